"""Southbound: the IoT agent and the importers that bring data into the twin."""
