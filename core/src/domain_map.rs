//! A small map from [`Domain`] to a value, kept as a sorted vector.
//!
//! Hosts have a handful of domains (package, core, uncore, DRAM per socket,
//! a few GPUs), and the simulator builds one such map per VM per interval:
//! a sorted `Vec` costs one allocation and no tree nodes. It serialises as
//! a JSON object, exactly like the `BTreeMap` it stands in for.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::domain::Domain;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct DomainMap<V>(Vec<(Domain, V)>);

impl<V> Default for DomainMap<V> {
    fn default() -> Self {
        DomainMap(Vec::new())
    }
}

impl<V> DomainMap<V> {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with_capacity(n: usize) -> Self {
        DomainMap(Vec::with_capacity(n))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn get(&self, d: &Domain) -> Option<&V> {
        self.0.binary_search_by(|(k, _)| k.cmp(d)).ok().map(|i| &self.0[i].1)
    }

    pub fn get_mut(&mut self, d: &Domain) -> Option<&mut V> {
        self.0.binary_search_by(|(k, _)| k.cmp(d)).ok().map(|i| &mut self.0[i].1)
    }

    /// The value for `d`, inserted as the default if absent.
    pub fn entry(&mut self, d: Domain) -> &mut V
    where
        V: Default,
    {
        let i = match self.0.binary_search_by(|(k, _)| k.cmp(&d)) {
            Ok(i) => i,
            Err(i) => {
                self.0.insert(i, (d, V::default()));
                i
            }
        };
        &mut self.0[i].1
    }

    /// Inserts or replaces; returns the value replaced.
    pub fn insert(&mut self, d: Domain, v: V) -> Option<V> {
        match self.0.binary_search_by(|(k, _)| k.cmp(&d)) {
            Ok(i) => Some(std::mem::replace(&mut self.0[i].1, v)),
            Err(i) => {
                self.0.insert(i, (d, v));
                None
            }
        }
    }

    /// Entries in domain order.
    pub fn iter(&self) -> impl Iterator<Item = (&Domain, &V)> {
        self.0.iter().map(|(d, v)| (d, v))
    }

    pub fn keys(&self) -> impl Iterator<Item = &Domain> {
        self.0.iter().map(|(d, _)| d)
    }

    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.0.iter().map(|(_, v)| v)
    }
}

/// Later entries win over earlier ones with the same domain, as with `BTreeMap`.
impl<V> FromIterator<(Domain, V)> for DomainMap<V> {
    fn from_iter<I: IntoIterator<Item = (Domain, V)>>(it: I) -> Self {
        let mut v: Vec<(Domain, V)> = it.into_iter().collect();
        // Stable, so among equal domains the order of arrival is kept and the last is found last.
        v.sort_by_key(|a| a.0);
        let mut out: Vec<(Domain, V)> = Vec::with_capacity(v.len());
        for (d, x) in v {
            match out.last_mut() {
                Some(last) if last.0 == d => last.1 = x,
                _ => out.push((d, x)),
            }
        }
        DomainMap(out)
    }
}

impl<'a, V> IntoIterator for &'a DomainMap<V> {
    type Item = (&'a Domain, &'a V);
    type IntoIter = std::iter::Map<std::slice::Iter<'a, (Domain, V)>, fn(&'a (Domain, V)) -> (&'a Domain, &'a V)>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter().map(|(d, v)| (d, v))
    }
}

impl<V> IntoIterator for DomainMap<V> {
    type Item = (Domain, V);
    type IntoIter = std::vec::IntoIter<(Domain, V)>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<V> std::ops::Index<&Domain> for DomainMap<V> {
    type Output = V;
    fn index(&self, d: &Domain) -> &V {
        self.get(d).unwrap_or_else(|| panic!("no entry for domain {d}"))
    }
}

impl<V: Serialize> Serialize for DomainMap<V> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (d, v) in &self.0 {
            m.serialize_entry(d, v)?;
        }
        m.end()
    }
}

impl<'de, V: Deserialize<'de>> Deserialize<'de> for DomainMap<V> {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        struct V_<V>(PhantomData<V>);
        impl<'de, V: Deserialize<'de>> Visitor<'de> for V_<V> {
            type Value = DomainMap<V>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object from domain names to values")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
                let mut v = Vec::with_capacity(a.size_hint().unwrap_or(0).min(64));
                while let Some((d, x)) = a.next_entry::<Domain, V>()? {
                    v.push((d, x));
                }
                Ok(v.into_iter().collect())
            }
        }
        de.deserialize_map(V_(PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn behaves_like_a_btreemap() {
        let items = [(Domain::dram(0), 3u64), (Domain::package(1), 1), (Domain::package(0), 2), (Domain::dram(0), 9)];
        let ours: DomainMap<u64> = items.into_iter().collect();
        let theirs: BTreeMap<Domain, u64> = items.into_iter().collect();
        assert_eq!(ours.iter().map(|(d, v)| (*d, *v)).collect::<Vec<_>>(), theirs.iter().map(|(d, v)| (*d, *v)).collect::<Vec<_>>());
        assert_eq!(ours.get(&Domain::dram(0)), Some(&9));
        assert_eq!(ours.get(&Domain::gpu(0)), None);
        assert_eq!(serde_json::to_string(&ours).unwrap(), serde_json::to_string(&theirs).unwrap());
        let back: DomainMap<u64> = serde_json::from_str(&serde_json::to_string(&theirs).unwrap()).unwrap();
        assert_eq!(back, ours);
        let mut m = DomainMap::new();
        assert_eq!(m.insert(Domain::core(0), 1), None);
        assert_eq!(m.insert(Domain::core(0), 2), Some(1));
        assert_eq!(m[&Domain::core(0)], 2);
        assert!(serde_json::from_str::<DomainMap<u64>>(r#"{"bogus-0": 1}"#).is_err());
    }
}
