"""Sample data for the demo, the benchmarks and the tests (not used by any command)."""
