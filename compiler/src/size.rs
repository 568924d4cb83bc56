//! Sizes that depend on a network's free dimensions (`input [N, 3, H, W]`): integer
//! expressions over the free names with floor division, as the shape rules make them.
//!
//! One canonical form, so that two sizes the rules make equal for every value are equal as
//! values here (the checker asks for a constraint only where they are not): a sum of integer
//! multiples of products of names and floors, plus a constant. A floor `⌊e/d⌋` keeps only
//! what does not divide out (`⌊(2·H + 4)/2⌋` is `H + 2`), with its constant in `0..d`, and a
//! floor of a floor plus a constant is one floor (ResNet's stem, `⌊(⌊(H + 1)/2⌋ − 1)/2⌋ + 1`,
//! is `⌊(H + 3)/4⌋`), so a chain of strided layers gives one floor per axis.
//!
//! Arithmetic is checked: every operation gives `None` where a coefficient would overflow.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// A factor of a product: a free name, or the floor of a size (never constant) by `d ≥ 2`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Atom {
    Name(String),
    Floor(Box<Size>, u64),
}

/// A product of atoms, sorted; never empty.
type Product = Vec<Atom>;

/// An integer expression over free names; see the module's documentation.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Size {
    /// Each product's coefficient, never zero.
    terms: BTreeMap<Product, i64>,
    constant: i64,
}

impl From<u64> for Size {
    fn from(v: u64) -> Size {
        // Sizes of checked graphs fit in i64 (`Shape::fits`).
        Size { terms: BTreeMap::new(), constant: i64::try_from(v).unwrap_or(i64::MAX) }
    }
}

impl Size {
    /// A constant.
    pub fn known(v: i64) -> Size {
        Size { terms: BTreeMap::new(), constant: v }
    }

    /// A free name: `H`.
    pub fn name(name: &str) -> Size {
        Size { terms: BTreeMap::from([(vec![Atom::Name(name.to_string())], 1)]), constant: 0 }
    }

    /// The value, where it depends on no name.
    pub fn as_known(&self) -> Option<i64> {
        self.terms.is_empty().then_some(self.constant)
    }

    fn add_term(&mut self, product: Product, coefficient: i64) -> Option<()> {
        let entry = self.terms.entry(product).or_insert(0);
        *entry = entry.checked_add(coefficient)?;
        if *entry == 0 {
            self.terms.retain(|_, c| *c != 0);
        }
        Some(())
    }

    pub fn add(&self, other: &Size) -> Option<Size> {
        let mut sum = self.clone();
        for (product, &c) in &other.terms {
            sum.add_term(product.clone(), c)?;
        }
        sum.constant = sum.constant.checked_add(other.constant)?;
        Some(sum)
    }

    pub fn add_known(&self, k: i64) -> Option<Size> {
        self.add(&Size::known(k))
    }

    pub fn sub(&self, other: &Size) -> Option<Size> {
        self.add(&other.scale(-1)?)
    }

    /// `k` times the size.
    pub fn scale(&self, k: i64) -> Option<Size> {
        if k == 0 {
            return Some(Size::known(0));
        }
        let terms =
            self.terms.iter().map(|(p, &c)| Some((p.clone(), c.checked_mul(k)?))).collect::<Option<_>>()?;
        Some(Size { terms, constant: self.constant.checked_mul(k)? })
    }

    /// The product of two sizes (a flattened `C·H·W`).
    pub fn mul(&self, other: &Size) -> Option<Size> {
        let mut out = Size::known(self.constant.checked_mul(other.constant)?);
        for (p, &c) in &self.terms {
            out.add_term(p.clone(), c.checked_mul(other.constant)?)?;
        }
        for (q, &d) in &other.terms {
            out.add_term(q.clone(), d.checked_mul(self.constant)?)?;
            for (p, &c) in &self.terms {
                let mut product: Product = p.iter().chain(q).cloned().collect();
                product.sort();
                out.add_term(product, c.checked_mul(d)?)?;
            }
        }
        Some(out)
    }

    /// `⌊self / d⌋`, in canonical form; `d` must be at least 1.
    pub fn floor_div(&self, d: u64) -> Option<Size> {
        let di = i64::try_from(d).ok().filter(|&d| d >= 1)?;
        if di == 1 {
            return Some(self.clone());
        }
        // What divides out leaves the floor: ⌊(d·q + r)/d⌋ = q + ⌊r/d⌋.
        let mut quotient = Size::known(self.constant.div_euclid(di));
        let mut rest = Size::known(self.constant.rem_euclid(di));
        for (p, &c) in &self.terms {
            match c % di {
                0 => quotient.add_term(p.clone(), c / di)?,
                _ => rest.add_term(p.clone(), c)?,
            }
        }
        if rest.terms.is_empty() {
            return Some(quotient);
        }
        // A factor common to the rest and the divisor cancels: ⌊2·H/4⌋ = ⌊H/2⌋.
        let g =
            rest.terms.values().fold(gcd(rest.constant.unsigned_abs(), d), |g, &c| gcd(g, c.unsigned_abs()));
        let (rest, d) = if g > 1 {
            let g = g as i64;
            let terms = rest.terms.into_iter().map(|(p, c)| (p, c / g)).collect();
            (Size { terms, constant: rest.constant / g }, d / g as u64)
        } else {
            (rest, d)
        };
        if d == 1 {
            return quotient.add(&rest);
        }
        // ⌊(⌊x/a⌋ + r)/d⌋ = ⌊(x + a·r)/(a·d)⌋: one floor for a chain of strided layers.
        if let [(product, 1)] = rest.terms.iter().map(|(p, &c)| (p, c)).collect::<Vec<_>>()[..] {
            if let [Atom::Floor(inner, a)] = &product[..] {
                let shifted = inner.add_known(i64::try_from(*a).ok()?.checked_mul(rest.constant)?)?;
                return quotient.add(&shifted.floor_div(a.checked_mul(d)?)?);
            }
        }
        quotient.add_term(vec![Atom::Floor(Box::new(rest), d)], 1)?;
        Some(quotient)
    }

    /// `⌈self / d⌉`, as `⌊(self + d − 1)/d⌋`.
    pub fn ceil_div(&self, d: u64) -> Option<Size> {
        self.add_known(i64::try_from(d).ok()?.checked_sub(1)?)?.floor_div(d)
    }

    /// The value with each name given by `value`; `None` for a name without one, or on
    /// overflow.
    pub fn eval(&self, value: &dyn Fn(&str) -> Option<i64>) -> Option<i64> {
        let mut sum = self.constant;
        for (product, &c) in &self.terms {
            let mut v = c;
            for atom in product {
                let a = match atom {
                    Atom::Name(n) => value(n)?,
                    Atom::Floor(inner, d) => inner.eval(value)?.div_euclid(i64::try_from(*d).ok()?),
                };
                v = v.checked_mul(a)?;
            }
            sum = sum.checked_add(v)?;
        }
        Some(sum)
    }

    /// The Rust expression that computes it in `i64`, each name given by `var` (generated
    /// code's check of an input's free sizes).
    pub fn to_rust(&self, var: &dyn Fn(&str) -> proc_macro2::TokenStream) -> proc_macro2::TokenStream {
        let constant = proc_macro2::Literal::i64_unsuffixed(self.constant);
        let terms = self.terms.iter().map(|(product, &c)| {
            let c = proc_macro2::Literal::i64_unsuffixed(c);
            let factors = product.iter().map(|atom| match atom {
                Atom::Name(n) => var(n),
                Atom::Floor(inner, d) => {
                    let (inner, d) = (inner.to_rust(var), proc_macro2::Literal::u64_unsuffixed(*d));
                    quote::quote! { (#inner).div_euclid(#d) }
                }
            });
            quote::quote! { (#c) #(* #factors)* }
        });
        quote::quote! { ((#constant) #(+ #terms)*) }
    }

    /// The free names it depends on.
    pub fn names(&self) -> BTreeSet<String> {
        let mut names = BTreeSet::new();
        self.collect_names(&mut names);
        names
    }

    fn collect_names(&self, names: &mut BTreeSet<String>) {
        for atom in self.terms.keys().flatten() {
            match atom {
                Atom::Name(n) => {
                    names.insert(n.clone());
                }
                Atom::Floor(inner, _) => inner.collect_names(names),
            }
        }
    }

    /// Whether some product holds two factors that depend on a name (`H·W`, `H·⌊H/2⌋`): the
    /// size is then not affine in any one name on a residue class.
    pub fn is_nonlinear(&self) -> bool {
        self.terms.keys().any(|p| {
            p.len() > 1 || p.iter().any(|a| matches!(a, Atom::Floor(inner, _) if inner.is_nonlinear()))
        })
    }

    /// A period `M` of the size's floors: with each name `x = b + M·t`, the size is affine in
    /// the `t`s, for every `b`. `None` if it passes `limit`.
    pub fn period(&self, limit: u64) -> Option<u64> {
        let mut m = 1u64;
        for atom in self.terms.keys().flatten() {
            if let Atom::Floor(inner, d) = atom {
                let inner = inner.period(limit)?.checked_mul(*d)?;
                m = lcm(m, inner)?;
                if m > limit {
                    return None;
                }
            }
        }
        Some(m)
    }
}

/// The greatest common divisor.
pub fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// The least common multiple, `None` on overflow.
pub fn lcm(a: u64, b: u64) -> Option<u64> {
    if a == 0 || b == 0 {
        return Some(0);
    }
    (a / gcd(a, b)).checked_mul(b)
}

impl fmt::Display for Size {
    /// `⌊(H + 1)/2⌋`, `2·⌊H/16⌋`, `64·H·W`: positive products first, the constant last, with the
    /// minus sign of mathematics.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        // Positive terms first: `2·⌊H/16⌋ − ⌊H/8⌋` reads as a difference.
        let positive = self.terms.iter().filter(|(_, &c)| c > 0);
        for (product, &c) in positive.chain(self.terms.iter().filter(|(_, &c)| c < 0)) {
            let sign = match (first, c < 0) {
                (true, false) => "",
                (true, true) => "−",
                (false, false) => " + ",
                (false, true) => " − ",
            };
            f.write_str(sign)?;
            if c.unsigned_abs() != 1 {
                write!(f, "{}·", c.unsigned_abs())?;
            }
            for (i, atom) in product.iter().enumerate() {
                if i > 0 {
                    f.write_str("·")?;
                }
                match atom {
                    Atom::Name(n) => f.write_str(n)?,
                    Atom::Floor(inner, d) if inner.terms.len() == 1 && inner.constant == 0 => {
                        match inner.terms.values().next() {
                            Some(1) => write!(f, "⌊{inner}/{d}⌋")?,
                            _ => write!(f, "⌊({inner})/{d}⌋")?,
                        }
                    }
                    Atom::Floor(inner, d) => write!(f, "⌊({inner})/{d}⌋")?,
                }
            }
            first = false;
        }
        match (first, self.constant) {
            (true, c) if c < 0 => write!(f, "−{}", c.unsigned_abs()),
            (true, c) => write!(f, "{c}"),
            (false, 0) => Ok(()),
            (false, c) if c < 0 => write!(f, " − {}", c.unsigned_abs()),
            (false, c) => write!(f, " + {c}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h() -> Size {
        Size::name("H")
    }

    /// The sliding-window rule, as the checker applies it to a free size.
    fn window(x: &Size, k: i64, s: u64, p: i64) -> Size {
        x.add_known(2 * p - k).unwrap().floor_div(s).unwrap().add_known(1).unwrap()
    }

    #[test]
    fn strided_layers_make_one_floor() {
        let conv1 = window(&h(), 7, 2, 3);
        assert_eq!(conv1.to_string(), "⌊(H + 1)/2⌋");
        let pool = window(&conv1, 3, 2, 1);
        assert_eq!(pool.to_string(), "⌊(H + 3)/4⌋");
        let same = window(&pool, 3, 1, 1);
        assert_eq!(same, pool);
        assert_eq!(h().floor_div(2).unwrap().floor_div(8).unwrap().to_string(), "⌊H/16⌋");
        assert_eq!(h().scale(2).unwrap().add_known(4).unwrap().floor_div(2).unwrap().to_string(), "H + 2");
        assert_eq!(h().scale(2).unwrap().floor_div(4).unwrap().to_string(), "⌊H/2⌋");
        let up = h().floor_div(16).unwrap().scale(2).unwrap();
        assert_eq!(up.to_string(), "2·⌊H/16⌋");
        assert_eq!(up.sub(&h().floor_div(8).unwrap()).unwrap().to_string(), "2·⌊H/16⌋ − ⌊H/8⌋");
        let area = h().mul(&Size::name("W")).unwrap().scale(64).unwrap();
        assert_eq!(area.to_string(), "64·H·W");
        assert!(area.is_nonlinear() && !pool.is_nonlinear());
        assert_eq!(Size::known(-3).to_string(), "−3");
        assert_eq!(h().scale(-1).unwrap().add_known(5).unwrap().to_string(), "−H + 5");
    }

    #[test]
    fn canonical_forms_evaluate_as_their_rules() {
        // Every canonical form equals the naive rule it came from, for every value.
        let chains: [&[(i64, u64, i64)]; 4] = [
            &[(7, 2, 3), (3, 2, 1), (3, 2, 1), (3, 2, 1), (3, 2, 1)],
            &[(3, 1, 1), (2, 2, 0), (3, 1, 1), (2, 2, 0), (5, 3, 2)],
            &[(11, 4, 2), (3, 2, 0), (5, 1, 2), (3, 2, 0), (3, 3, 0)],
            &[(1, 2, 0), (3, 2, 1), (4, 4, 0), (2, 3, 1)],
        ];
        for chain in chains {
            let mut size = h();
            for &(k, s, p) in chain {
                size = window(&size, k, s, p);
            }
            for v in 1..400i64 {
                let mut naive = v;
                for &(k, s, p) in chain {
                    naive = (naive + 2 * p - k).div_euclid(s as i64) + 1;
                }
                assert_eq!(size.eval(&|_| Some(v)), Some(naive), "{size} at H = {v}");
            }
            let m = size.period(1 << 20).unwrap();
            // Affine on every residue class of the period.
            for b in 1..=m as i64 {
                let at = |t: i64| size.eval(&|_| Some(b + m as i64 * t)).unwrap();
                assert_eq!(at(2) - at(1), at(1) - at(0), "{size} on H ≡ {b} mod {m}");
            }
        }
    }
}
