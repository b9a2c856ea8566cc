//! Unit tests of the core, without sockets: time and peers are simulated.
use super::*;
