"""The HTTP endpoint's pure parts (no Ray): request parsing and validation, video access rules, the response."""
