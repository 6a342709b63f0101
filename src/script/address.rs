//! Addresses in the target as a Rhai type: they print in hex (`0x7f…`),
//! and otherwise behave as the ints they are — arithmetic with ints,
//! comparisons with addresses and ints, and anywhere an address or an
//! argument is taken. `hex(n)` shows any int the same way. In JSON an
//! address is a number.

use rhai::{Dynamic, Engine};

/// An address in the target (from `sym()`, `maps()`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Address(pub u64);

impl std::fmt::Display for Address {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:#x}", self.0)
    }
}

/// An address from an int or an Address; `None` for anything else.
pub fn to_addr(v: &Dynamic) -> Option<u64> {
    if let Some(a) = v.clone().try_cast::<Address>() {
        return Some(a.0);
    }
    v.as_int().ok().map(|i| i as u64)
}

pub fn register(engine: &mut Engine) {
    let text = |a: &mut Address| a.to_string();
    engine
        .register_type_with_name::<Address>("Address")
        .register_fn("to_string", text)
        .register_fn("to_debug", text)
        .register_fn("to_int", |a: &mut Address| a.0 as i64)
        .register_fn("+", |a: Address, n: i64| {
            Address(a.0.wrapping_add(n as u64))
        })
        .register_fn("+", |n: i64, a: Address| {
            Address(a.0.wrapping_add(n as u64))
        })
        .register_fn("-", |a: Address, n: i64| {
            Address(a.0.wrapping_sub(n as u64))
        })
        .register_fn("-", |a: Address, b: Address| a.0.wrapping_sub(b.0) as i64);
    macro_rules! compare {
        ($($op:tt),*) => {$(
            engine
                .register_fn(stringify!($op), |a: Address, b: Address| a.0 $op b.0)
                .register_fn(stringify!($op), |a: Address, b: i64| a.0 $op b as u64)
                .register_fn(stringify!($op), |a: i64, b: Address| (a as u64) $op b.0);
        )*};
    }
    compare!(==, !=, <, <=, >, >=);
}

/// `hex(n)`: an int or an address as `0x…` (an int as its 64 bits).
pub fn register_hex(engine: &mut Engine, _shared: &super::Shared) {
    engine
        .register_fn("hex", |a: Address| a.to_string())
        .register_fn("hex", |n: i64| Address(n as u64).to_string());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_print_in_hex_and_act_as_ints() {
        let mut engine = Engine::new();
        register(&mut engine);
        register_hex(
            &mut engine,
            &crate::script::Session::new(Default::default(), false),
        );
        engine.register_fn("at", |n: i64| Address(n as u64));
        // As a script sees it printed: through its to_string.
        let eval = |s: &str| engine.eval::<String>(&format!("`${{{s}}}`")).unwrap();
        assert_eq!(eval("at(4096)"), "0x1000");
        assert_eq!(eval("at(4096) + 16"), "0x1010");
        assert_eq!(eval("let a = at(16); a += 1; a"), "0x11");
        assert_eq!(eval("at(4096) - at(4000)"), "96");
        assert_eq!(
            eval("at(4096) == 4096 && 4096 == at(4096) && at(1) < at(2)"),
            "true"
        );
        assert_eq!(eval("hex(255)"), "0xff");
        assert_eq!(eval("hex(-1)"), "0xffffffffffffffff");
        assert_eq!(eval("at(7).to_int()"), "7");
    }
}
