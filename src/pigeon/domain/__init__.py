"""The pure core of Pigeon: values, rules and state machines, with no I/O."""
