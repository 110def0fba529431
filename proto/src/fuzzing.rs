//! A small mutation fuzzer for the parsers of outside input, used by the
//! `fuzz_*` tests of every crate. It takes seed inputs (real messages,
//! kept as corpora next to the tests), mutates them the way broken or
//! hostile peers do (flipped bytes, truncations, splices, repeated and
//! deleted runs, JSON-shaped replacements, type swaps) and hands each case
//! to the parser under test, which must return an error or a value, never
//! panic. Deterministic per seed, bounded by `FUZZ_ITERATIONS` (default
//! 3000 cases per target, which CI runs; set it higher locally).

/// Cases per target.
pub fn iterations() -> usize {
    std::env::var("FUZZ_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3000)
}

/// xorshift64*: no dependency, same cases on every machine.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.max(1))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next_u64() % n as u64) as usize
        }
    }
}

/// Fragments that make parsers take unusual paths.
const TOKENS: &[&str] = &[
    "null",
    "true",
    "0",
    "-1",
    "1e309",
    "18446744073709551616",
    "\"\"",
    "[]",
    "{}",
    "\"\\u0000\"",
    "\"\\ud800\"",
    "[[[[[[[[[[[[[[[[",
    "{\"type\":",
    "\"type\"",
    "\"\u{feff}\"",
    ".",
    "==",
    "\u{1F600}",
];

/// One mutation of `seed`.
pub fn mutate(seed: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut out = seed.to_vec();
    let rounds = 1 + rng.below(4);
    for _ in 0..rounds {
        let len = out.len();
        match rng.below(9) {
            0 if len > 0 => {
                let i = rng.below(len);
                out[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                out[i] = rng.next_u64() as u8;
            }
            2 => out.truncate(rng.below(len + 1)),
            3 if len > 0 => {
                let (a, b) = (rng.below(len), rng.below(len));
                let (a, b) = (a.min(b), a.max(b));
                out.drain(a..b);
            }
            4 if len > 0 => {
                let (a, b) = (rng.below(len), rng.below(len));
                let (a, b) = (a.min(b), a.max(b).min(a + 64));
                let run = out[a..b].to_vec();
                let at = rng.below(len + 1);
                for _ in 0..1 + rng.below(8) {
                    out.splice(at..at, run.iter().copied());
                }
            }
            5 => {
                let t = TOKENS[rng.below(TOKENS.len())].as_bytes();
                let at = rng.below(len + 1);
                out.splice(at..at, t.iter().copied());
            }
            6 => {
                // Replace a JSON value after a colon with another token.
                let colons: Vec<usize> = (0..len).filter(|&i| out[i] == b':').collect();
                if !colons.is_empty() {
                    let at = colons[rng.below(colons.len())] + 1;
                    let end = (at..len)
                        .find(|&i| matches!(out[i], b',' | b'}' | b']'))
                        .unwrap_or(len);
                    let t = TOKENS[rng.below(TOKENS.len())].as_bytes();
                    out.splice(at..end, t.iter().copied());
                }
            }
            7 => out.extend(std::iter::repeat_n(b'x', rng.below(4096))),
            _ => {
                let i = rng.below(len + 1);
                out.insert(i, rng.next_u64() as u8);
            }
        }
    }
    out
}

/// Runs `target` on every seed and `iterations()` mutations of them.
pub fn run(name: &str, seeds: &[&[u8]], mut target: impl FnMut(&[u8])) {
    let mut rng = Rng::new(name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    }));
    for s in seeds {
        target(s);
    }
    if seeds.is_empty() {
        return;
    }
    for _ in 0..iterations() {
        let seed = seeds[rng.below(seeds.len())];
        let case = mutate(seed, &mut rng);
        target(&case);
    }
}

/// `run` for parsers of text: invalid UTF-8 is replaced, as a WebSocket
/// text frame or a config file reader would have refused it earlier.
pub fn run_str(name: &str, seeds: &[&str], mut target: impl FnMut(&str)) {
    let seeds: Vec<&[u8]> = seeds.iter().map(|s| s.as_bytes()).collect();
    run(name, &seeds, |b| target(&String::from_utf8_lossy(b)));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mutations_are_deterministic_and_varied() {
        let seed = br#"{"type":"hello","hello":{"version":"1.0"}}"#;
        let (mut a, mut b) = (Rng::new(7), Rng::new(7));
        let cases: Vec<Vec<u8>> = (0..200).map(|_| mutate(seed, &mut a)).collect();
        let again: Vec<Vec<u8>> = (0..200).map(|_| mutate(seed, &mut b)).collect();
        assert_eq!(cases, again);
        let distinct: std::collections::HashSet<_> = cases.iter().collect();
        assert!(distinct.len() > 150);
    }
}
