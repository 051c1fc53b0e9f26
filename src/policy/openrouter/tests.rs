//! Unit tests of the OpenRouter policy.
