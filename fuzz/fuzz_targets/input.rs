//! The fuzzer's input read as a stream of decisions, shared by the core and relay targets:
//! past its end every read answers zero, so any input, however short, is a whole run.

pub struct Input<'a>(pub &'a [u8]);

impl Input<'_> {
    pub fn byte(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }

    pub fn u16(&mut self) -> u16 {
        u16::from(self.byte()) << 8 | u16::from(self.byte())
    }

    /// Up to `n` bytes as they are (fewer at the end of the input).
    #[allow(dead_code)] // the relay target makes its peers' bytes itself
    pub fn bytes(&mut self, n: usize) -> &[u8] {
        let n = n.min(self.0.len());
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        a
    }
}
