"""The pure domain: records, rules and token crypto. No I/O, no event loop, no clock reads."""
