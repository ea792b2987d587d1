"""The card's timeline: every call, SMS, e-mail and note, and comments on them."""
