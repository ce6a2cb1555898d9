//! Shapley values over VMs (being written).
