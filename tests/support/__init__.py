"""Test support shared by every test folder: real peers, a running Callcard, factories."""
