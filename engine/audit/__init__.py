"""The audit trail: a hash chain every read and write of case data appends to, and the refusals in it."""
