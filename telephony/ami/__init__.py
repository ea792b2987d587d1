"""Asterisk: the AMI adapter (a small asyncio client), the translation of AMI events into
call events, the AMI simulator, and the FastAGI routing server."""
