"""Pure domain rules: no I/O, no adapters. Everything here is unit-testable."""
