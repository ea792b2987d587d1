"""Asterisk: the AMI adapter (on panoramisk), the translation of AMI events into
call events, the AMI simulator, and the FastAGI routing server."""
