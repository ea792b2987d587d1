"""Asterisk: the AMI adapter (panoramisk), the translation of AMI events into call events, and the FastAGI routing server."""
