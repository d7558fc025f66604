"""Other systems: referrals posted over REST, API clients and their tokens, webhooks to referrers."""
