"""SMS service: sends the outbox through the SMPP gateway, turns delivery receipts into
message states and received messages into communications on the client's card."""
