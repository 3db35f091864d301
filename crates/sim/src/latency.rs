//! The latency model: how long a message takes from one simulated node to another. Uniform
//! or fixed delays, or a geographic model that places each node in a region with an access
//! delay of its own ([`Latency::Regions`]). Pure: every draw comes from the simulation's RNG,
//! passed in.

use std::time::Duration;

use rand::Rng;
use rand::rngs::StdRng;

/// How long a message takes to arrive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Latency {
    /// Every message takes this long.
    Fixed(Duration),
    /// Each message takes a time drawn uniformly from this range (inclusive).
    Uniform(Duration, Duration),
    /// Nodes are placed in the regions of [`REGIONS`] (by their shares) with an access delay
    /// of 1 to 10 ms each; a message takes half its regions' round trip plus both access
    /// delays, plus up to 10% jitter.
    Regions,
}

/// Where a node sits in the latency model: its region (an index into [`REGIONS`], 0 unless
/// [`Latency::Regions`]) and its one-way delay to the region's backbone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Place {
    pub(crate) region: usize,
    access: Duration,
}

impl Latency {
    /// The mean round trip between two nodes drawn at random (without jitter): the yardstick
    /// a lookup's latency is measured against.
    pub fn mean_round_trip(&self) -> Duration {
        match *self {
            Latency::Fixed(d) => d * 2,
            Latency::Uniform(lo, hi) => lo + hi,
            Latency::Regions => {
                let mut ms = 0.0;
                for (a, from) in REGIONS.iter().enumerate() {
                    for (b, to) in REGIONS.iter().enumerate() {
                        ms += from.share * to.share * REGION_RTT_MS[a][b] as f64;
                    }
                }
                // Both ends' access delays (1 to 10 ms each, 5.5 on average), both ways.
                Duration::from_secs_f64((ms + 4.0 * 5.5) / 1_000.0)
            }
        }
    }

    /// Places a new node: under [`Latency::Regions`], a region drawn by the regions' shares
    /// and an access delay of 1 to 10 ms; otherwise region 0 with none (and no draw).
    pub(crate) fn place(&self, rng: &mut StdRng) -> Place {
        match self {
            Latency::Regions => {
                let draw: f64 = rng.random_range(0.0..1.0);
                let mut sum = 0.0;
                let region = REGIONS
                    .iter()
                    .position(|r| {
                        sum += r.share;
                        draw < sum
                    })
                    .unwrap_or(REGIONS.len() - 1);
                let access = Duration::from_millis(rng.random_range(1..=10));
                Place { region, access }
            }
            _ => Place {
                region: 0,
                access: Duration::ZERO,
            },
        }
    }

    /// The one-way latency between nodes at `a` and `b` without jitter (the uniform model's
    /// draws are all jitter).
    pub(crate) fn base(&self, a: Place, b: Place) -> Duration {
        match *self {
            Latency::Fixed(d) => d,
            Latency::Uniform(lo, hi) => (lo + hi) / 2,
            Latency::Regions => {
                Duration::from_millis(REGION_RTT_MS[a.region][b.region]) / 2 + a.access + b.access
            }
        }
    }

    /// The latency of one message from `a` to `b`, jitter drawn from `rng`.
    pub(crate) fn draw(&self, a: Place, b: Place, rng: &mut StdRng) -> Duration {
        match *self {
            Latency::Fixed(d) => d,
            Latency::Uniform(lo, hi) if hi > lo => rng.random_range(lo..=hi),
            Latency::Uniform(lo, _) => lo,
            Latency::Regions => {
                let base = self.base(a, b);
                let jitter = rng.random_range(0..=base.as_micros() as u64 / 10);
                base + Duration::from_micros(jitter)
            }
        }
    }
}

/// A region of the geographic latency model: its name and share of the nodes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Region {
    /// Where.
    pub name: &'static str,
    /// Fraction of the nodes placed there.
    pub share: f64,
}

/// The regions of [`Latency::Regions`]; see `docs/simulation.md` for where the figures come
/// from.
pub const REGIONS: [Region; 5] = [
    Region {
        name: "North America east",
        share: 0.25,
    },
    Region {
        name: "North America west",
        share: 0.15,
    },
    Region {
        name: "Europe",
        share: 0.35,
    },
    Region {
        name: "Asia",
        share: 0.20,
    },
    Region {
        name: "South America",
        share: 0.05,
    },
];

/// Round trips between the [`REGIONS`], in milliseconds (within a region: 10 ms).
pub const REGION_RTT_MS: [[u64; 5]; 5] = [
    [10, 62, 90, 215, 115],
    [62, 10, 145, 170, 175],
    [90, 145, 10, 160, 200],
    [215, 170, 160, 10, 320],
    [115, 175, 200, 320, 10],
];

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn a_message_between_regions_takes_half_their_round_trip_plus_both_accesses() {
        let a = Place {
            region: 0,
            access: Duration::from_millis(3),
        };
        let b = Place {
            region: 3,
            access: Duration::from_millis(5),
        };
        let base = Latency::Regions.base(a, b);
        assert_eq!(base, Duration::from_micros(107_500 + 8_000));
        let mut rng = StdRng::seed_from_u64(1);
        for _ in 0..100 {
            let d = Latency::Regions.draw(a, b, &mut rng);
            assert!(d >= base && d <= base + base / 10, "{d:?}");
        }
    }

    #[test]
    fn only_the_regions_model_draws_a_place() {
        let mut rng = StdRng::seed_from_u64(1);
        let fixed = Latency::Fixed(Duration::from_millis(5));
        assert_eq!(fixed.place(&mut rng).region, 0);
        let place = Latency::Regions.place(&mut rng);
        assert!(place.region < REGIONS.len());
        assert!((1..=10).contains(&place.access.as_millis()));
    }
}
