//! SQLite store: events, intents, engine control state, policy revisions.
