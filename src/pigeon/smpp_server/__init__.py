"""The customer-facing SMPP server: customers bind to Pigeon as ESMEs."""
