//! `--name value` flags, all optional with defaults: the soak's roles are started by the
//! coordinator (or scripts/soak.sh), not typed by hand, so a small parser is enough.

use std::collections::HashMap;
use std::str::FromStr;

pub struct Args(HashMap<String, String>);

impl Args {
    pub fn parse(words: &[String]) -> Result<Args, String> {
        let mut map = HashMap::new();
        let mut words = words.iter();
        while let Some(word) = words.next() {
            let name = word
                .strip_prefix("--")
                .ok_or_else(|| format!("expected --flag, got {word:?}"))?;
            let value = words
                .next()
                .ok_or_else(|| format!("--{name} needs a value"))?;
            map.insert(name.to_owned(), value.clone());
        }
        Ok(Args(map))
    }

    pub fn get(&self, name: &str) -> Option<String> {
        self.0.get(name).cloned()
    }

    /// The flag's value, or `default`; a value that does not parse is fatal (the caller is
    /// a script whose mistake should stop the run).
    pub fn num<T: FromStr>(&self, name: &str, default: T) -> T {
        match self.0.get(name) {
            None => default,
            Some(v) => v
                .parse()
                .unwrap_or_else(|_| panic!("--{name}: not a number: {v:?}")),
        }
    }
}
