"""Runnable example applications (shipped inside the package as ``govbus.examples``)."""
