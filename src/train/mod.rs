//! Training and evaluation support that needs no deep-learning framework.
//!
//! - [`split`]: speaker-independent (or any group column) train/valid/test splits
//!   and group-wise cross-validation folds; random row splits are allowed but
//!   flagged as leaking speakers.
//! - [`metrics`]: confusion matrix, accuracy, UAR, precision/recall/F1, and mean ±
//!   std over cross-validation folds, with text rendering and serde.
//!
//! Both are pure functions of their inputs (plus a seed where stated): no I/O, no
//! model code.

pub mod metrics;
pub mod split;
