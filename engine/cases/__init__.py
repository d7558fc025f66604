"""The case: its kernel, intake, the events of its machine, and the records and reads around it."""
