//! Placeholder while the forest model is written (issue 3, this session).

use serde::{Deserialize, Serialize};

use super::{ModelParams, PowerModel, TrainingSet};
use crate::error::{Error, Result};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ForestParams {
    pub trees: u16,
}

impl Default for ForestParams {
    fn default() -> Self {
        ForestParams { trees: 50 }
    }
}

#[derive(Debug)]
pub struct ForestModel;

impl ForestModel {
    pub fn fit(_ts: &TrainingSet, _p: &ModelParams) -> Result<Box<dyn PowerModel>> {
        Err(Error::Fit { method: "forest", msg: "not built yet".into() })
    }
}
