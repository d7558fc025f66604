"""The audit trail (a hash chain), refusals in it, 開示請求 (who read a person's data), and retention."""
