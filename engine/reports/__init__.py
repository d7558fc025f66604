"""年度集計: the yearly figures the network meeting evaluates, and their CSV and workbook files."""
