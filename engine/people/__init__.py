"""People: one record per person (名寄せ, merges), households, and a person as one reader may see them."""
