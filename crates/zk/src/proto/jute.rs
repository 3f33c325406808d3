//! Jute, ZooKeeper's binary record encoding: big-endian `int` (4 bytes) and `long` (8), a `boolean`
//! as one byte, and `buffer`, `ustring` and `vector` as an `int` length (or count) followed by the
//! contents, where -1 means null. A record is its fields in order, with no framing of its own.
//!
//! The reader never trusts a length: anything longer than what remains is an error, not an
//! allocation, so malformed input from a client costs nothing.

/// Why bytes did not decode.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The input ended inside a field.
    #[error("jute: truncated: {needed} bytes needed, {remaining} remain")]
    Truncated { needed: usize, remaining: usize },
    /// A length or count below -1, or beyond what remains.
    #[error("jute: unreasonable length {0}")]
    BadLength(i32),
    /// A request type this crate does not decode.
    #[error("unknown op code {0}")]
    UnknownOp(i32),
    /// An op a multi of this kind may not carry (ZooKeeper: "Invalid type of op", or mixed kinds).
    #[error("op {0} is not allowed in this multi")]
    BadMultiOp(i32),
    /// Create flags that are no create mode, inside a multi (ZooKeeper rejects the whole record).
    #[error("invalid create flags {0}")]
    BadCreateFlags(i32),
    /// A tag of Tally's own encodings (log commands, snapshots) that names nothing.
    #[error("unknown tag {0}")]
    BadTag(u8),
}

/// Reads jute values from a byte slice, front to back.
#[derive(Clone, Debug)]
pub struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { buf }
    }

    /// Bytes not yet read.
    pub fn remaining(&self) -> usize {
        self.buf.len()
    }

    pub fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if n > self.buf.len() {
            return Err(DecodeError::Truncated { needed: n, remaining: self.buf.len() });
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        Ok(self.take(N)?.try_into().expect("take returns exactly N bytes"))
    }

    pub fn byte(&mut self) -> Result<u8, DecodeError> {
        Ok(self.array::<1>()?[0])
    }

    pub fn int(&mut self) -> Result<i32, DecodeError> {
        Ok(i32::from_be_bytes(self.array()?))
    }

    pub fn long(&mut self) -> Result<i64, DecodeError> {
        Ok(i64::from_be_bytes(self.array()?))
    }

    /// Any non-zero byte is true, as Java's `DataInput.readBoolean`.
    pub fn bool(&mut self) -> Result<bool, DecodeError> {
        Ok(self.byte()? != 0)
    }

    /// A length prefix: `None` for -1 (null); an error below -1 or beyond what remains.
    fn length(&mut self) -> Result<Option<usize>, DecodeError> {
        match self.int()? {
            -1 => Ok(None),
            n if n < -1 || n as usize > self.buf.len() => Err(DecodeError::BadLength(n)),
            n => Ok(Some(n as usize)),
        }
    }

    /// A `buffer`; null is `None`.
    pub fn buffer(&mut self) -> Result<Option<Vec<u8>>, DecodeError> {
        match self.length()? {
            None => Ok(None),
            Some(n) => Ok(Some(self.take(n)?.to_vec())),
        }
    }

    /// A `ustring`; null reads as empty. Invalid UTF-8 becomes U+FFFD, as Java's `new String(bytes,
    /// UTF_8)` does, so a bad path fails path validation (BadArguments) rather than decoding.
    pub fn ustring(&mut self) -> Result<String, DecodeError> {
        match self.length()? {
            None => Ok(String::new()),
            Some(n) => Ok(String::from_utf8_lossy(self.take(n)?).into_owned()),
        }
    }

    /// A `vector`; null reads as empty. Every item takes at least one byte, so a count beyond
    /// what remains is refused before anything is allocated.
    pub fn vector<T>(
        &mut self,
        mut item: impl FnMut(&mut Self) -> Result<T, DecodeError>,
    ) -> Result<Vec<T>, DecodeError> {
        let count = self.length()?.unwrap_or(0);
        let mut items = Vec::with_capacity(count);
        for _ in 0..count {
            items.push(item(self)?);
        }
        Ok(items)
    }

    pub fn read<T: Jute>(&mut self) -> Result<T, DecodeError> {
        T::get(self)
    }
}

/// Writes jute values to a growing buffer.
#[derive(Clone, Debug, Default)]
pub struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    pub fn new() -> Writer {
        Writer::default()
    }

    /// A writer that appends to `buf`.
    pub fn appending(buf: Vec<u8>) -> Writer {
        Writer { buf }
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.buf
    }

    pub fn byte(&mut self, v: u8) {
        self.buf.push(v);
    }

    pub fn int(&mut self, v: i32) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    pub fn long(&mut self, v: i64) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    pub fn bool(&mut self, v: bool) {
        self.buf.push(u8::from(v));
    }

    /// A length prefix. Lengths past `i32::MAX` cannot be framed by ZooKeeper at all.
    fn length(&mut self, n: usize) {
        self.int(i32::try_from(n).expect("jute lengths fit in an int"));
    }

    /// A `buffer`; `None` writes null (-1).
    pub fn buffer(&mut self, v: Option<&[u8]>) {
        match v {
            None => self.int(-1),
            Some(bytes) => {
                self.length(bytes.len());
                self.buf.extend_from_slice(bytes);
            }
        }
    }

    pub fn ustring(&mut self, v: &str) {
        self.buffer(Some(v.as_bytes()));
    }

    pub fn vector<T>(&mut self, items: &[T], mut item: impl FnMut(&mut Self, &T)) {
        self.length(items.len());
        for v in items {
            item(self, v);
        }
    }

    pub fn write<T: Jute>(&mut self, v: &T) {
        v.put(self);
    }
}

/// A value with a jute encoding.
pub trait Jute: Sized {
    fn put(&self, w: &mut Writer);
    fn get(r: &mut Reader<'_>) -> Result<Self, DecodeError>;
}

/// A jute record (a class of `zookeeper.jute`): may be an item of a `vector`.
pub trait Record: Jute {}

/// The bytes of a value.
pub fn encode<T: Jute>(v: &T) -> Vec<u8> {
    let mut w = Writer::new();
    v.put(&mut w);
    w.into_bytes()
}

/// A value from the front of `bytes`. Trailing bytes are ignored, as ZooKeeper's server does.
pub fn decode<T: Jute>(bytes: &[u8]) -> Result<T, DecodeError> {
    T::get(&mut Reader::new(bytes))
}

impl Jute for i32 {
    fn put(&self, w: &mut Writer) {
        w.int(*self)
    }
    fn get(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.int()
    }
}

impl Jute for i64 {
    fn put(&self, w: &mut Writer) {
        w.long(*self)
    }
    fn get(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.long()
    }
}

impl Jute for bool {
    fn put(&self, w: &mut Writer) {
        w.bool(*self)
    }
    fn get(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.bool()
    }
}

impl Jute for String {
    fn put(&self, w: &mut Writer) {
        w.ustring(self)
    }
    fn get(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.ustring()
    }
}

/// A `buffer` that may be null: znode data, where Java clients see null and empty differently.
impl Jute for Option<Vec<u8>> {
    fn put(&self, w: &mut Writer) {
        w.buffer(self.as_deref())
    }
    fn get(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.buffer()
    }
}

/// A `buffer` where null means empty (passwords, auth data, SASL tokens).
impl Jute for Vec<u8> {
    fn put(&self, w: &mut Writer) {
        w.buffer(Some(self))
    }
    fn get(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(r.buffer()?.unwrap_or_default())
    }
}

impl Jute for Vec<String> {
    fn put(&self, w: &mut Writer) {
        w.vector(self, |w, s| w.ustring(s))
    }
    fn get(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.vector(Reader::ustring)
    }
}

impl<T: Record> Jute for Vec<T> {
    fn put(&self, w: &mut Writer) {
        w.vector(self, |w, v| v.put(w))
    }
    fn get(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.vector(T::get)
    }
}

/// Declares a jute record: a struct whose fields are written and read in declaration order.
macro_rules! record {
    ($(#[$meta:meta])* pub struct $name:ident { $($(#[$fmeta:meta])* pub $field:ident: $ty:ty,)* }) => {
        $(#[$meta])*
        #[derive(Clone, Debug, Default, PartialEq, Eq)]
        pub struct $name {
            $($(#[$fmeta])* pub $field: $ty,)*
        }

        impl $crate::proto::jute::Jute for $name {
            #[allow(unused_variables)]
            fn put(&self, w: &mut $crate::proto::jute::Writer) {
                $(w.write(&self.$field);)*
            }
            #[allow(unused_variables)]
            fn get(r: &mut $crate::proto::jute::Reader<'_>) -> Result<Self, $crate::proto::jute::DecodeError> {
                Ok($name { $($field: r.read()?,)* })
            }
        }

        impl $crate::proto::jute::Record for $name {}
    };
}
pub(crate) use record;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn primitives_are_big_endian_and_bool_is_one_byte() {
        let mut w = Writer::new();
        w.int(0x01020304);
        w.long(-2);
        w.bool(true);
        w.bool(false);
        assert_eq!(w.into_bytes(), [1, 2, 3, 4, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe, 1, 0]);
    }

    #[test]
    fn null_buffer_is_minus_one_and_reads_back_as_none() {
        let bytes = encode(&None::<Vec<u8>>);
        assert_eq!(bytes, [0xff; 4]);
        assert_eq!(decode::<Option<Vec<u8>>>(&bytes), Ok(None));
        assert_eq!(decode::<Option<Vec<u8>>>(&encode(&Some(vec![]))), Ok(Some(vec![])));
        assert_eq!(decode::<String>(&bytes), Ok(String::new()));
        assert_eq!(decode::<Vec<String>>(&bytes), Ok(vec![]));
    }

    #[test]
    fn string_and_vector_framing() {
        assert_eq!(encode(&"ab".to_string()), [0, 0, 0, 2, b'a', b'b']);
        assert_eq!(encode(&vec!["a".to_string()]), [0, 0, 0, 1, 0, 0, 0, 1, b'a']);
    }

    #[test]
    fn truncation_is_an_error() {
        assert_eq!(decode::<i64>(&[0, 0, 0]), Err(DecodeError::Truncated { needed: 8, remaining: 3 }));
        assert_eq!(decode::<bool>(&[]), Err(DecodeError::Truncated { needed: 1, remaining: 0 }));
    }

    #[test]
    fn lengths_beyond_the_input_or_below_null_are_refused() {
        assert_eq!(decode::<Vec<u8>>(&[0, 0, 0, 3, 1, 2]), Err(DecodeError::BadLength(3)));
        assert_eq!(decode::<String>(&[0xff, 0xff, 0xff, 0xfe]), Err(DecodeError::BadLength(-2)));
        // A huge count is refused before anything is allocated.
        assert_eq!(decode::<Vec<String>>(&[0x7f, 0xff, 0xff, 0xff]), Err(DecodeError::BadLength(i32::MAX)));
    }

    #[test]
    fn invalid_utf8_reads_as_replacement_characters() {
        assert_eq!(decode::<String>(&[0, 0, 0, 2, b'/', 0xff]), Ok("/\u{fffd}".to_string()));
    }
}
