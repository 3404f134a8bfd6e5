//! TEMPORARY (replaced at merge by the Prometheus client module): the contract's data types only.
use std::collections::BTreeMap;

#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Secret(String);
impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}
impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}
#[derive(Debug, Clone, PartialEq)]
pub enum QueryData {
    Vector(Vec<Sample>),
    Scalar(Sample),
    Matrix(Vec<Series>),
    String(String),
}
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub labels: BTreeMap<String, String>,
    pub timestamp: f64,
    pub value: f64,
}
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub labels: BTreeMap<String, String>,
    pub samples: Vec<(f64, f64)>,
}
