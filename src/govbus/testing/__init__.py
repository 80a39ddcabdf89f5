from govbus.testing.conformance import BusConformance

__all__ = ["BusConformance"]
