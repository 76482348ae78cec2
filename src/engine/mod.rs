//! Pure planners and the executor that carries plans out with intents and leases.
