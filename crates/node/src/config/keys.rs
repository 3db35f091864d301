//! The one table of config-file keys: each [`FileConfig`](super::FileConfig) field's name, the
//! comment an operator reads above it, and where its value lives in a [`Config`].
//!
//! `cairn config` prints [`template`] of the defaults, so the file it prints cannot drift
//! from the code: a test checks that every `FileConfig` field has exactly one entry here and
//! that the printed file loads back to the defaults. A new field needs a new entry.

use std::time::Duration;

use super::Config;

/// One key of the config file.
pub struct Key {
    /// The key, as the file spells it (a [`FileConfig`](super::FileConfig) field).
    pub name: &'static str,
    /// What it sets, in a sentence or two; printed as a comment above the key.
    pub doc: &'static str,
    /// Its value in a config; `None` prints the key commented out (not set).
    pub value: fn(&Config) -> Option<toml::Value>,
}

fn secs(duration: Duration) -> Option<toml::Value> {
    Some(toml::Value::Float(duration.as_secs_f64()))
}

fn count(n: usize) -> Option<toml::Value> {
    Some(toml::Value::Integer(i64::try_from(n).unwrap_or(i64::MAX)))
}

fn text(s: impl ToString) -> Option<toml::Value> {
    Some(toml::Value::String(s.to_string()))
}

/// Every key of the config file, in the order `cairn config` prints them.
pub const KEYS: &[Key] = &[
    Key {
        name: "listen",
        doc: "Where to accept peer connections (the port to open in a firewall).",
        value: |c| text(c.listen),
    },
    Key {
        name: "also_listen",
        doc: "More addresses to accept peers on, say \"[::]:7400\" beside an IPv4 `listen`\n(dual stack). Each takes `listen`'s port; port 0 means \"the same\".",
        value: |c| {
            Some(toml::Value::Array(
                c.also_listen
                    .iter()
                    .map(|a| toml::Value::String(a.to_string()))
                    .collect(),
            ))
        },
    },
    Key {
        name: "network",
        doc: "The network name, 1 to 64 bytes; nodes of other networks are refused.",
        value: |c| text(c.network.as_str()),
    },
    Key {
        name: "data_dir",
        doc: "Where the node keeps its key (node.key: its identity), its items (items.redb)\nand its routing table (routing.snapshot). Unset: `cairn node` uses the platform data\ndirectory; a node started as a library keeps none (a new identity every start).",
        value: |c| {
            c.data_dir
                .as_ref()
                .map(|d| toml::Value::String(d.display().to_string()))
        },
    },
    Key {
        name: "k",
        doc: "Bucket size, nodes returned by find_node, and replicas of each item.",
        value: |c| count(c.protocol.k.get()),
    },
    Key {
        name: "alpha",
        doc: "Requests in flight per lookup path.",
        value: |c| count(c.protocol.alpha.get()),
    },
    Key {
        name: "disjoint_paths",
        doc: "Disjoint paths per lookup (S/Kademlia); 1 is plain Kademlia.",
        value: |c| count(c.protocol.disjoint_paths.get()),
    },
    Key {
        name: "get_quorum",
        doc: "Valid copies a get of a signed key waits for before it stops early.",
        value: |c| count(c.protocol.get_quorum.get()),
    },
    Key {
        name: "request_timeout_secs",
        doc: "Seconds a request may go unanswered before it counts as failed.",
        value: |c| secs(c.protocol.request_timeout),
    },
    Key {
        name: "lookup_timeout_secs",
        doc: "Seconds a lookup may run in all.",
        value: |c| secs(c.protocol.lookup_timeout),
    },
    Key {
        name: "min_slot_timeout_secs",
        doc: "A slow request stops holding one of a lookup's alpha slots after its contact's\nround-trip timeout, never sooner than this many seconds.",
        value: |c| secs(c.protocol.min_slot_timeout),
    },
    Key {
        name: "max_value_size",
        doc: "The largest item value accepted, in bytes.",
        value: |c| count(c.protocol.max_value_size),
    },
    Key {
        name: "max_failures",
        doc: "Failed requests in a row after which a contact is removed.",
        value: |c| count(c.protocol.max_failures as usize),
    },
    Key {
        name: "max_items",
        doc: "The most items the store holds.",
        value: |c| count(c.limits.max_items),
    },
    Key {
        name: "max_store_bytes",
        doc: "The most bytes of items the store holds.",
        value: |c| count(c.limits.max_bytes),
    },
    Key {
        name: "max_items_per_subnet",
        doc: "The most items stored for one subnet (IPv4 /24, IPv6 /48).",
        value: |c| count(c.limits.max_items_per_subnet),
    },
    Key {
        name: "max_store_bytes_per_subnet",
        doc: "The most bytes stored for one subnet (IPv4 /24, IPv6 /48).",
        value: |c| count(c.limits.max_bytes_per_subnet),
    },
    Key {
        name: "max_frame",
        doc: "The largest frame accepted from a peer, in bytes.",
        value: |c| count(c.max_frame),
    },
    Key {
        name: "idle_timeout_secs",
        doc: "A connection with no traffic for this many seconds is closed.",
        value: |c| secs(c.idle_timeout),
    },
    Key {
        name: "read_timeout_secs",
        doc: "A connection stalled mid-frame (or mid-handshake) this many seconds is closed.",
        value: |c| secs(c.read_timeout),
    },
    Key {
        name: "max_outbound",
        doc: "The most outgoing connections kept; the least recently used idle one makes room.",
        value: |c| count(c.max_outbound),
    },
    Key {
        name: "max_inbound",
        doc: "The most incoming connections served at once.",
        value: |c| count(c.max_inbound),
    },
    Key {
        name: "max_subnet_contacts_per_bucket",
        doc: "Routing-table places one subnet may hold in one bucket.",
        value: |c| count(c.protocol.diversity.per_bucket),
    },
    Key {
        name: "max_subnet_contacts",
        doc: "Routing-table places one subnet may hold in the whole table.",
        value: |c| count(c.protocol.diversity.per_table),
    },
    Key {
        name: "max_inbound_per_host",
        doc: "The most incoming connections from one host (an IPv4 address, an IPv6 /64).",
        value: |c| count(c.max_inbound_per_host),
    },
    Key {
        name: "handshake_timeout_secs",
        doc: "Seconds a dialer has, once accepted, to complete the handshake.",
        value: |c| secs(c.handshake_timeout),
    },
    Key {
        name: "requests_per_host_per_sec",
        doc: "Requests of any kind one host may make per second; past it they are answered 429.",
        value: |c| Some(toml::Value::Float(c.request_rate.per_second)),
    },
    Key {
        name: "requests_per_host_burst",
        doc: "Requests one host may make at once (unset: twice the rate).",
        value: |c| Some(toml::Value::Float(c.request_rate.burst)),
    },
    Key {
        name: "stores_per_host_per_sec",
        doc: "store requests one host may make per second, within the request rate.",
        value: |c| Some(toml::Value::Float(c.store_rate.per_second)),
    },
    Key {
        name: "stores_per_host_burst",
        doc: "store requests one host may make at once (unset: twice the rate).",
        value: |c| Some(toml::Value::Float(c.store_rate.burst)),
    },
    Key {
        name: "datagrams",
        doc: "Speak datagrams (protocol version 2): bind UDP beside each TCP listener and send\nlookups over it. false makes a version-1 node, TCP only.",
        value: |c| Some(toml::Value::Boolean(c.datagrams)),
    },
    Key {
        name: "handshakes_per_host_per_sec",
        doc: "Datagram sessions one host may open per second; past it its initials are dropped\nunread (each costs a signature check and a key agreement).",
        value: |c| Some(toml::Value::Float(c.handshake_rate.per_second)),
    },
    Key {
        name: "handshakes_per_host_burst",
        doc: "Datagram sessions one host may open at once (unset: twice the rate).",
        value: |c| Some(toml::Value::Float(c.handshake_rate.burst)),
    },
    Key {
        name: "max_requests_per_connection",
        doc: "Requests from one incoming connection served at once; past it the connection\nis read no further until an answer goes out.",
        value: |c| count(c.max_requests_per_connection),
    },
    Key {
        name: "republish_interval_secs",
        doc: "How often (seconds, at least 1) a node republishes the items it published.",
        value: |c| secs(c.protocol.republish_interval),
    },
    Key {
        name: "replicate_interval_secs",
        doc: "How often (seconds, at least 1) a node stores each item it holds at the k closest nodes.",
        value: |c| secs(c.protocol.replicate_interval),
    },
    Key {
        name: "refresh_interval_secs",
        doc: "How often (seconds, at least 1) buckets are checked for staleness.",
        value: |c| secs(c.protocol.refresh_interval),
    },
    Key {
        name: "max_subscriptions",
        doc: "Live listen subscriptions kept for peers, all connections together; more are\nanswered 429.",
        value: |c| count(c.protocol.max_subscriptions),
    },
    Key {
        name: "listen_ttl_secs",
        doc: "Seconds a subscription lasts unless renewed, 1 to 600 (the protocol's limit).",
        value: |c| secs(c.protocol.listen_ttl),
    },
    Key {
        name: "watch_refresh_secs",
        doc: "How often (seconds, at least 1) a watch looks its key up again.",
        value: |c| secs(c.protocol.watch_refresh),
    },
    Key {
        name: "nat_subnet_prefix_v4",
        doc: "The IPv4 prefix length of one voter's subnet when the node counts its peers' votes\non the address they see it at (one vote per subnet; IPv6 uses /48). 32 for a test\nnetwork whose nodes share one /24.",
        value: |c| count(usize::from(c.protocol.nat_subnet_prefix_v4)),
    },
    Key {
        name: "mode",
        doc: "\"auto\", \"server\" or \"client\". A client announces no address, so no node adds\nit to its routing table; it stores nothing for others and does all its user asks. Auto\nis a server while its reachability checks find it public, a client otherwise.",
        value: |c| text(c.mode.as_str()),
    },
];

/// Old spellings a file may still use, and the key each became; never printed.
pub const ALIASES: &[(&str, &str)] = &[
    ("max_items_per_network", "max_items_per_subnet"),
    ("max_store_bytes_per_network", "max_store_bytes_per_subnet"),
];

/// The lines of one key: its comment, then `name = value`, or `# name =` when unset.
pub fn render(name: &str, doc: &str, value: Option<toml::Value>) -> String {
    let mut out = String::new();
    for line in doc.lines() {
        out.push_str("# ");
        out.push_str(line);
        out.push('\n');
    }
    match value {
        Some(value) => {
            let mut table = toml::Table::new();
            table.insert(name.to_owned(), value);
            // One key with a plain value always serializes; fall back to the bare key if not.
            out.push_str(&toml::to_string(&table).unwrap_or_else(|_| format!("# {name} =\n")));
        }
        None => out.push_str(&format!("# {name} =\n")),
    }
    out
}

/// Every node key of `config`, commented, in [`KEYS`] order, separated by blank lines.
pub fn template(config: &Config) -> String {
    KEYS.iter()
        .map(|key| render(key.name, key.doc, (key.value)(config)))
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::FileConfig;

    /// The field names serde knows for `T`, asked of its `Deserialize` (which lists them when
    /// it asks for a struct), so a field added to `FileConfig` shows up here by itself.
    fn fields<T: serde::de::DeserializeOwned>() -> &'static [&'static str] {
        struct Fields(Option<&'static [&'static str]>);
        #[derive(Debug)]
        struct Stop;
        impl std::fmt::Display for Stop {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("stop")
            }
        }
        impl std::error::Error for Stop {}
        impl serde::de::Error for Stop {
            fn custom<M: std::fmt::Display>(_: M) -> Self {
                Stop
            }
        }
        impl<'de> serde::Deserializer<'de> for &mut Fields {
            type Error = Stop;
            fn deserialize_any<V: serde::de::Visitor<'de>>(self, _: V) -> Result<V::Value, Stop> {
                Err(Stop)
            }
            fn deserialize_struct<V: serde::de::Visitor<'de>>(
                self,
                _: &'static str,
                fields: &'static [&'static str],
                _: V,
            ) -> Result<V::Value, Stop> {
                self.0 = Some(fields);
                Err(Stop)
            }
            serde::forward_to_deserialize_any! {
                bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
                byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct map enum
                identifier ignored_any
            }
        }
        let mut found = Fields(None);
        let _ = T::deserialize(&mut found);
        found.0.unwrap_or(&[])
    }

    #[test]
    fn every_file_config_field_has_exactly_one_entry() {
        let all = fields::<FileConfig>();
        assert!(all.len() > 30, "{all:?}");
        let fields: Vec<&str> = all
            .iter()
            .copied()
            .filter(|field| !ALIASES.iter().any(|(old, _)| old == field))
            .collect();
        for (old, new) in ALIASES {
            assert!(all.contains(old) && fields.contains(new), "{old} -> {new}");
        }
        for field in &fields {
            let entries = KEYS.iter().filter(|key| key.name == *field).count();
            assert_eq!(entries, 1, "FileConfig::{field} needs one entry in KEYS");
        }
        for key in KEYS {
            assert!(
                fields.contains(&key.name),
                "{} is not a FileConfig field",
                key.name
            );
        }
        // ... and the printed file sets each once.
        let printed = template(&Config::default().data_dir("/var/lib/cairn"));
        for field in &fields {
            let lines = printed
                .lines()
                .filter(|line| line.split(" = ").next() == Some(*field))
                .count();
            assert_eq!(lines, 1, "{field} in:\n{printed}");
        }
    }

    #[test]
    fn the_printed_defaults_load_back_to_the_defaults() {
        for config in [
            Config::default(),
            Config::default().data_dir("/var/lib/cairn"),
        ] {
            let printed = template(&config);
            let file: FileConfig = toml::from_str(&printed).expect("the template parses");
            let mut loaded = Config::default();
            file.apply(&mut loaded)
                .expect("the template's values are valid");
            assert_eq!(format!("{loaded:?}"), format!("{config:?}"), "{printed}");
        }
    }
}
