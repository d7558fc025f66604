"""The person's side of the record: 開示請求 (who read or received their data, and why) and retention."""
