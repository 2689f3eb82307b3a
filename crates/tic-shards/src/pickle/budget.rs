//! A budget check on a pickle's opcodes, run before the pickle is decoded.
//!
//! The pickle decoders tic-rs uses (serde-pickle for the TiC pickles, Candle's for `.pt`
//! checkpoints) materialise every shared reference as a deep copy, where Python's unpickler
//! shares the object: a few hundred bytes that re-reference a container in a loop (`DUP`, memo
//! `GET`, then a tuple of both, again and again) expand exponentially and exhaust memory
//! (`fuzz/regressions/pickles/`). [`check`] runs the pickle machine on *sizes* only: every value
//! is a node in an arena recording what decoding it costs, never its contents, so the check
//! itself takes memory linear in the input. It refuses a pickle whose decoding would allocate
//! more than [`budget_for`] its length, or nest deeper than [`MAX_DEPTH`] levels (both decoders
//! recurse once per level; a deeply nested pickle would overflow the stack), or that is
//! malformed (the decoders would fail on it too; refusing it here means a pickle is only ever
//! decoded after its whole opcode stream was accounted for).
//!
//! The simulation follows the decoder it guards ([`Sharing`]) and over-approximates: a shared
//! node that one copy later extends counts as extended in every copy, and a `REDUCE` result
//! counts as holding its callable and its arguments.

use std::collections::HashMap;

/// Deepest nesting of containers accepted (TiC's pickles nest 3 deep; checkpoints a few more).
pub const MAX_DEPTH: u32 = 256;
/// What one decoded value costs, in bytes, besides its string or bytes payload (the size of
/// the decoders' value enums and their container slots, rounded up).
pub const NODE_BYTES: u64 = 64;
/// The budget every pickle gets, however short.
pub const MIN_BUDGET: u64 = 64 << 20;
/// The budget each byte of input adds (a real TiC pickle decodes to about 3 bytes per byte).
pub const BUDGET_PER_INPUT_BYTE: u64 = 16;
/// serde-pickle's `MARK` starts a new stack with room for 128 values.
const MARK_BYTES: u64 = 128 * 40;

/// The decoding budget of a pickle of `len` bytes: [`MIN_BUDGET`] plus
/// [`BUDGET_PER_INPUT_BYTE`] per byte.
pub fn budget_for(len: usize) -> u64 {
    MIN_BUDGET.saturating_add(BUDGET_PER_INPUT_BYTE.saturating_mul(len as u64))
}

/// How the guarded decoder treats the memo.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sharing {
    /// serde-pickle: a memo `GET` pushes a reference that is deep-copied once per occurrence
    /// when the result is converted; `DUP`, `REDUCE` arguments and re-memoised references copy
    /// on the spot; `MARK` opens a new stack.
    Lazy,
    /// Candle's `.pt` reader: every memo `PUT` and `GET` deep-copies on the spot.
    Eager,
}

/// Why a pickle is refused before decoding.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BudgetError {
    /// Decoding it would allocate more than the budget.
    #[error(
        "decoding it would take more than {budget} bytes (shared references are decoded as \
         copies: a pickle bomb?)"
    )]
    TooLarge {
        /// The budget, in bytes.
        budget: u64,
    },
    /// It nests deeper than [`MAX_DEPTH`].
    #[error("it nests containers deeper than {MAX_DEPTH} levels")]
    TooDeep,
    /// It refers to itself (the decoders cannot build recursive structures).
    #[error("it holds a recursive structure")]
    Recursive,
    /// The opcode stream is malformed.
    #[error("byte {offset}: {msg}")]
    Malformed {
        /// Offset of the opcode in the input.
        offset: usize,
        /// What is wrong there.
        msg: String,
    },
}

/// A value on the simulated stack or in the memo.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Item {
    /// A node of the arena.
    Node(u32),
    /// A memo reference, resolved to the memo's final entry when the result is converted.
    Ref(u32),
}

/// One decoded value: its own cost, its parts, and the cost and depth of a copy made now
/// (memo references inside counted as one node each).
#[derive(Debug, Default)]
struct Node {
    own: u64,
    /// `(part, nested)`: `nested` is false for the earlier version of an extended container.
    parts: Vec<(Item, bool)>,
    copy_size: u64,
    copy_depth: u32,
}

/// The simulated pickle machine.
struct Machine<'a> {
    data: &'a [u8],
    pos: usize,
    op_at: usize,
    sharing: Sharing,
    budget: u64,
    spent: u64,
    nodes: Vec<Node>,
    stack: Vec<Item>,
    marks: Vec<Vec<Item>>,
    memo: HashMap<u32, Item>,
}

/// Refuses `data` if decoding it with the decoder `sharing` describes would allocate more than
/// [`budget_for`] its length, nest deeper than [`MAX_DEPTH`], or if it is malformed.
pub fn check(data: &[u8], sharing: Sharing) -> Result<(), BudgetError> {
    check_with_budget(data, sharing, budget_for(data.len()))
}

/// [`check`] with an explicit budget in bytes.
pub fn check_with_budget(data: &[u8], sharing: Sharing, budget: u64) -> Result<(), BudgetError> {
    let mut m = Machine {
        data,
        pos: 0,
        op_at: 0,
        sharing,
        budget,
        spent: 0,
        nodes: Vec::new(),
        stack: Vec::new(),
        marks: Vec::new(),
        memo: HashMap::new(),
    };
    loop {
        m.op_at = m.pos;
        let op = m.bytes(1)?[0];
        if op == b'.' {
            let result = m.pop()?;
            let size = m.expanded(result)?;
            return m.spend(size);
        }
        m.step(op)?;
    }
}

impl Machine<'_> {
    fn malformed<T>(&self, msg: impl Into<String>) -> Result<T, BudgetError> {
        Err(BudgetError::Malformed {
            offset: self.op_at,
            msg: msg.into(),
        })
    }

    fn spend(&mut self, bytes: u64) -> Result<(), BudgetError> {
        self.spent = self.spent.saturating_add(bytes);
        if self.spent > self.budget {
            return Err(BudgetError::TooLarge {
                budget: self.budget,
            });
        }
        Ok(())
    }

    fn bytes(&mut self, n: u64) -> Result<&[u8], BudgetError> {
        let left = (self.data.len() - self.pos) as u64;
        if n > left {
            return self.malformed("the pickle ends inside this opcode");
        }
        let start = self.pos;
        self.pos += n as usize;
        Ok(&self.data[start..self.pos])
    }

    fn uint(&mut self, width: u64) -> Result<u64, BudgetError> {
        let b = self.bytes(width)?;
        Ok(b.iter()
            .rev()
            .fold(0u64, |acc, &x| (acc << 8) | u64::from(x)))
    }

    fn line(&mut self) -> &[u8] {
        let rest = &self.data[self.pos..];
        let end = rest
            .iter()
            .position(|&b| b == b'\n')
            .map_or(rest.len(), |i| i + 1);
        self.pos += end;
        let mut line = &rest[..end];
        if let Some(l) = line.strip_suffix(b"\n") {
            line = l;
        }
        line.strip_suffix(b"\r").unwrap_or(line)
    }

    fn text_memo_id(&mut self) -> Result<u32, BudgetError> {
        let line = self.line();
        match std::str::from_utf8(line).ok().and_then(|s| s.parse().ok()) {
            Some(id) => Ok(id),
            None => self.malformed("a memo index that is not a number"),
        }
    }

    /// The memo index of a `PUT`/`GET` opcode: a text line, one byte or four.
    fn memo_id(&mut self, op: u8) -> Result<u32, BudgetError> {
        match op {
            b'p' | b'g' => self.text_memo_id(),
            b'q' | b'h' => Ok(self.uint(1)? as u32),
            _ => Ok(self.uint(4)? as u32),
        }
    }

    fn copy_size(&self, item: Item) -> (u64, u32) {
        match item {
            Item::Node(n) => {
                let n = &self.nodes[n as usize];
                (n.copy_size, n.copy_depth)
            }
            Item::Ref(_) => (NODE_BYTES, 1),
        }
    }

    /// Adds a node holding `parts`; its depth is checked here.
    fn node(&mut self, own: u64, parts: Vec<(Item, bool)>) -> Result<Item, BudgetError> {
        let mut copy_size = own;
        let mut copy_depth = 1;
        for &(p, nested) in &parts {
            let (s, d) = self.copy_size(p);
            copy_size = copy_size.saturating_add(s);
            copy_depth = copy_depth.max(d + u32::from(nested));
        }
        if copy_depth > MAX_DEPTH {
            return Err(BudgetError::TooDeep);
        }
        self.nodes.push(Node {
            own,
            parts,
            copy_size,
            copy_depth,
        });
        Ok(Item::Node((self.nodes.len() - 1) as u32))
    }

    fn leaf(&mut self, payload: u64) -> Result<(), BudgetError> {
        let item = self.node(NODE_BYTES.saturating_add(payload), Vec::new())?;
        self.stack.push(item);
        Ok(())
    }

    fn container(&mut self, items: Vec<Item>) -> Result<(), BudgetError> {
        let item = self.node(NODE_BYTES, items.into_iter().map(|i| (i, true)).collect())?;
        self.stack.push(item);
        Ok(())
    }

    fn pop(&mut self) -> Result<Item, BudgetError> {
        match self.stack.pop() {
            Some(i) => Ok(i),
            None => self.malformed("stack underflow"),
        }
    }

    fn pop_n(&mut self, n: usize) -> Result<Vec<Item>, BudgetError> {
        if self.stack.len() < n {
            return self.malformed("stack underflow");
        }
        Ok(self.stack.split_off(self.stack.len() - n))
    }

    fn pop_mark(&mut self) -> Result<Vec<Item>, BudgetError> {
        match self.marks.pop() {
            Some(below) => Ok(std::mem::replace(&mut self.stack, below)),
            None => self.malformed("no MARK to pop to"),
        }
    }

    fn memo_entry(&self, id: u32) -> Result<Item, BudgetError> {
        match self.memo.get(&id) {
            Some(&i) => Ok(i),
            None => self.malformed(format!("memo entry {id} was never stored")),
        }
    }

    /// A deep copy of `item` made now (a memo reference copies the memo's entry).
    fn copy(&mut self, item: Item) -> Result<Item, BudgetError> {
        let item = match item {
            Item::Ref(id) => self.memo_entry(id)?,
            node => node,
        };
        let (size, _) = self.copy_size(item);
        self.spend(size)?;
        Ok(item)
    }

    fn memo_put(&mut self, id: u32) -> Result<(), BudgetError> {
        match self.sharing {
            Sharing::Lazy => {
                let top = self.pop()?;
                let entry = match top {
                    Item::Ref(_) => self.copy(top)?,
                    node => node,
                };
                self.memo.insert(id, entry);
                self.stack.push(Item::Ref(id));
            }
            Sharing::Eager => {
                let top = *self
                    .stack
                    .last()
                    .map_or_else(|| self.malformed("stack underflow"), Ok)?;
                let entry = self.copy(top)?;
                self.memo.insert(id, entry);
            }
        }
        Ok(())
    }

    fn memo_get(&mut self, id: u32) -> Result<(), BudgetError> {
        let entry = self.memo_entry(id)?;
        let item = match self.sharing {
            Sharing::Lazy => Item::Ref(id),
            Sharing::Eager => self.copy(entry)?,
        };
        self.stack.push(item);
        Ok(())
    }

    /// `APPEND`, `SETITEMS`, …: the container on top (or the memo entry it refers to) gains
    /// `items`, as a new version of it.
    fn extend_top(&mut self, items: Vec<Item>) -> Result<(), BudgetError> {
        let top = *self
            .stack
            .last()
            .map_or_else(|| self.malformed("stack underflow"), Ok)?;
        let base = match top {
            Item::Ref(id) => self.memo_entry(id)?,
            node => node,
        };
        let mut parts = vec![(base, false)];
        parts.extend(items.into_iter().map(|i| (i, true)));
        let grown = self.node(0, parts)?;
        match top {
            Item::Ref(id) => {
                self.memo.insert(id, grown);
            }
            Item::Node(_) => *self.stack.last_mut().expect("checked") = grown,
        }
        Ok(())
    }

    /// A value popped for `REDUCE` or `STACK_GLOBAL`: serde-pickle resolves (copies) it.
    fn pop_resolved(&mut self) -> Result<Item, BudgetError> {
        let item = self.pop()?;
        match (self.sharing, item) {
            (Sharing::Lazy, Item::Ref(_)) => self.copy(item),
            _ => Ok(item),
        }
    }

    fn step(&mut self, op: u8) -> Result<(), BudgetError> {
        match op {
            b'\x80' => drop(self.bytes(1)?),
            b'\x95' => drop(self.bytes(8)?),
            b'(' => {
                if self.sharing == Sharing::Lazy {
                    self.spend(MARK_BYTES)?;
                }
                let below = std::mem::take(&mut self.stack);
                self.marks.push(below);
            }
            b'0' => {
                if self.stack.is_empty() {
                    self.pop_mark()?;
                } else {
                    self.pop()?;
                }
            }
            b'1' => drop(self.pop_mark()?),
            b'2' => {
                let top = *self
                    .stack
                    .last()
                    .map_or_else(|| self.malformed("stack underflow"), Ok)?;
                let copy = self.copy(top)?;
                self.stack.push(copy);
            }
            b'p' | b'q' | b'r' => {
                let id = self.memo_id(op)?;
                self.memo_put(id)?;
            }
            b'\x94' => self.memo_put(self.memo.len() as u32)?,
            b'g' | b'h' | b'j' => {
                let id = self.memo_id(op)?;
                self.memo_get(id)?;
            }
            _ => self.step_value(op)?,
        }
        Ok(())
    }

    /// The opcodes that push a scalar or build a container.
    fn step_value(&mut self, op: u8) -> Result<(), BudgetError> {
        match op {
            b'N' | b'\x88' | b'\x89' | b')' | b']' | b'}' | b'\x8f' => self.leaf(0)?,
            b'I' | b'L' | b'F' | b'S' | b'V' => {
                let n = self.line().len() as u64;
                self.leaf(n)?;
            }
            b'G' => self.skip_leaf(8)?,
            b'J' => self.skip_leaf(4)?,
            b'K' => self.skip_leaf(1)?,
            b'M' => self.skip_leaf(2)?,
            b'\x8a' if self.sharing == Sharing::Eager => {
                // Candle decodes LONG1 into an i64, shifting one byte at a time: more than 8
                // bytes overflow (a panic in debug builds, a wrong value in release).
                let n = self.uint(1)?;
                if n > 8 {
                    return self
                        .malformed(format!("a LONG1 of {n} bytes (Candle reads at most 8)"));
                }
                self.bytes(n)?;
                self.leaf(n)?;
            }
            b'\x8a' | b'C' | b'U' | b'\x8c' => self.counted_leaf(1)?,
            b'\x8b' | b'T' | b'B' | b'X' => self.counted_leaf(4)?,
            b'\x8d' | b'\x8e' | b'\x96' => self.counted_leaf(8)?,
            b'\x85' | b'\x86' | b'\x87' => {
                let items = self.pop_n(usize::from(op - b'\x84'))?;
                self.container(items)?;
            }
            b't' | b'l' | b'd' | b'\x91' => {
                let items = self.pop_mark()?;
                self.container(items)?;
            }
            b'a' => {
                let v = self.pop()?;
                self.extend_top(vec![v])?;
            }
            b's' => {
                let kv = self.pop_n(2)?;
                self.extend_top(kv)?;
            }
            b'e' | b'u' | b'\x90' => {
                let items = self.pop_mark()?;
                self.extend_top(items)?;
            }
            _ => self.step_object(op)?,
        }
        Ok(())
    }

    /// Globals, `REDUCE` and the object-building opcodes.
    fn step_object(&mut self, op: u8) -> Result<(), BudgetError> {
        match op {
            b'c' => {
                let n = (self.line().len() + self.line().len()) as u64;
                self.leaf(n)?;
            }
            b'\x93' => {
                let parts = vec![self.pop_resolved()?, self.pop_resolved()?];
                self.container(parts)?;
            }
            b'R' => {
                let parts = vec![self.pop_resolved()?, self.pop_resolved()?];
                self.container(parts)?;
            }
            b'i' => {
                self.line();
                self.line();
                let args = self.pop_mark()?;
                self.container(args)?;
            }
            b'o' => {
                let mut parts = self.pop_mark()?;
                parts.push(self.pop()?);
                self.container(parts)?;
            }
            b'\x81' => {
                let parts = self.pop_n(2)?;
                self.container(parts)?;
            }
            b'\x92' => {
                let parts = self.pop_n(3)?;
                self.container(parts)?;
            }
            b'b' => {
                let parts = self.pop_n(2)?;
                self.container(parts)?;
            }
            b'Q' => {
                let id = self.pop()?;
                self.container(vec![id])?;
            }
            other => return self.malformed(format!("unsupported opcode 0x{other:02x}")),
        }
        Ok(())
    }

    fn skip_leaf(&mut self, width: u64) -> Result<(), BudgetError> {
        self.bytes(width)?;
        self.leaf(0)
    }

    fn counted_leaf(&mut self, width: u64) -> Result<(), BudgetError> {
        let n = self.uint(width)?;
        self.bytes(n)?;
        self.leaf(n)
    }

    /// What converting `root` allocates: every memo reference expanded into a copy of the
    /// memo's final entry. Iterative (the graph may be deep); refuses cycles and depth.
    fn expanded(&self, root: Item) -> Result<u64, BudgetError> {
        #[derive(Clone, Copy, PartialEq)]
        enum State {
            Open,
            Done(u64, u32),
        }
        let mut nodes: HashMap<u32, State> = HashMap::new();
        let mut refs: HashMap<u32, State> = HashMap::new();
        let mut todo = vec![(root, false)];
        let done = |nodes: &HashMap<u32, State>, refs: &HashMap<u32, State>, i: Item| match i {
            Item::Node(n) => nodes.get(&n).copied(),
            Item::Ref(r) => refs.get(&r).copied(),
        };
        while let Some((item, children_done)) = todo.pop() {
            if !children_done {
                match done(&nodes, &refs, item) {
                    Some(State::Done(..)) => continue,
                    Some(State::Open) => return Err(BudgetError::Recursive),
                    None => {}
                }
                match item {
                    Item::Node(n) => {
                        nodes.insert(n, State::Open);
                        todo.push((item, true));
                        for &(p, _) in &self.nodes[n as usize].parts {
                            todo.push((p, false));
                        }
                    }
                    Item::Ref(r) => {
                        refs.insert(r, State::Open);
                        todo.push((item, true));
                        todo.push((self.memo_entry(r)?, false));
                    }
                }
                continue;
            }
            let value = match item {
                Item::Node(n) => {
                    let node = &self.nodes[n as usize];
                    let (mut size, mut depth) = (node.own, 1);
                    for &(p, nested) in &node.parts {
                        let Some(State::Done(s, d)) = done(&nodes, &refs, p) else {
                            return Err(BudgetError::Recursive);
                        };
                        size = size.saturating_add(s);
                        depth = depth.max(d + u32::from(nested));
                    }
                    (size, depth)
                }
                Item::Ref(r) => match done(&nodes, &refs, self.memo_entry(r)?) {
                    Some(State::Done(s, d)) => (s, d + 1),
                    _ => return Err(BudgetError::Recursive),
                },
            };
            if value.1 > MAX_DEPTH {
                return Err(BudgetError::TooDeep);
            }
            if value.0 > self.budget {
                return Err(BudgetError::TooLarge {
                    budget: self.budget,
                });
            }
            match item {
                Item::Node(n) => nodes.insert(n, State::Done(value.0, value.1)),
                Item::Ref(r) => refs.insert(r, State::Done(value.0, value.1)),
            };
        }
        match done(&nodes, &refs, root) {
            Some(State::Done(s, _)) => Ok(s),
            _ => Err(BudgetError::Recursive),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `(` N … then `\x85` (TUPLE1) `2` (DUP) `\x86` (TUPLE2) repeated: each round doubles.
    fn doubling(rounds: usize, sharing: Sharing) -> Vec<u8> {
        let mut p = b"\x80\x02N".to_vec();
        for _ in 0..rounds {
            match sharing {
                Sharing::Lazy => p.extend_from_slice(b"2\x86"),
                Sharing::Eager => p.extend_from_slice(b"q\x00h\x00\x86"),
            }
        }
        p.push(b'.');
        p
    }

    #[test]
    fn doubling_is_refused_and_short_chains_pass() {
        for sharing in [Sharing::Lazy, Sharing::Eager] {
            assert_eq!(check(&doubling(10, sharing), sharing), Ok(()));
            assert!(
                matches!(
                    check(&doubling(60, sharing), sharing),
                    Err(BudgetError::TooLarge { .. })
                ),
                "{sharing:?}"
            );
        }
    }

    #[test]
    fn memo_references_expand_once_per_use() {
        // A list memoised as 0, then a tuple of the reference twice, memoised as 1, and so on:
        // only the conversion expands it (serde-pickle), and that is what is counted.
        let mut p = b"\x80\x02]q\x00".to_vec();
        for i in 0..40u8 {
            p.extend_from_slice(&[b'h', i, b'h', i, b'\x86', b'q', i + 1]);
        }
        p.push(b'.');
        assert!(matches!(
            check(&p, Sharing::Lazy),
            Err(BudgetError::TooLarge { .. })
        ));
        // The same 40 rounds under a tiny budget per round pass when the chain is short.
        let short: Vec<u8> = p[..5 + 7 * 5].iter().copied().chain([b'.']).collect();
        assert_eq!(check(&short, Sharing::Lazy), Ok(()));
    }

    #[test]
    fn depth_and_malformed_and_cycles() {
        let mut deep = b"N".to_vec();
        deep.extend(std::iter::repeat_n(b'\x85', MAX_DEPTH as usize + 1));
        deep.push(b'.');
        assert_eq!(check(&deep, Sharing::Lazy), Err(BudgetError::TooDeep));
        assert!(matches!(
            check(b"\x86.", Sharing::Lazy),
            Err(BudgetError::Malformed { offset: 0, .. })
        ));
        assert!(matches!(
            check(b"N", Sharing::Lazy),
            Err(BudgetError::Malformed { offset: 1, .. })
        ));
        // A list that holds a reference to itself.
        assert_eq!(
            check(b"]q\x00h\x00a.", Sharing::Lazy),
            Err(BudgetError::Recursive)
        );
    }
}
