//! Message types and methods read from a `FileDescriptorSet` (what `protoc
//! --include_imports --descriptor_set_out` writes), with the wire reader of
//! this module: only what rendering needs.
//!
//! Type names are resolved when fully qualified (`.pkg.Outer.Inner`, as
//! protoc always writes them); a field whose type is not in the set (a file
//! left out of the set) is rendered as an unknown field, by number.

use super::wire::{self, Field, Val};

/// A message type of a [`Schema`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageRef(pub(super) usize);

/// The types and methods of a descriptor set.
#[derive(Debug, Default)]
pub struct Schema {
    messages: Vec<MessageDesc>,
    enums: Vec<Vec<(i32, String)>>,
    /// Full type names (no leading dot) and what they name.
    types: Vec<(String, Type)>,
    /// `types` indices in name order.
    by_name: Vec<usize>,
    /// `/pkg.Service/Method` paths and their output type names.
    methods: Vec<(String, String)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Type {
    Message(usize),
    Enum(usize),
}

#[derive(Debug, Default)]
pub(super) struct MessageDesc {
    pub fields: Vec<FieldDesc>,
    /// A map's entry type (`MessageOptions.map_entry`).
    pub map_entry: bool,
}

#[derive(Debug, Default)]
pub(super) struct FieldDesc {
    pub name: String,
    pub number: u32,
    pub repeated: bool,
    /// `FieldDescriptorProto.Type` (1 double ... 18 sint64).
    pub ty: u8,
    /// The message type (message fields) or enum (enum fields), when in the set.
    pub target: Option<usize>,
    type_name: String,
}

/// Field types (`FieldDescriptorProto.Type`).
pub(super) const MESSAGE: u8 = 11;
pub(super) const ENUM: u8 = 14;

/// Descriptors nested deeper than this are refused (the reader recurses).
const MAX_NESTING: usize = 64;

impl Schema {
    /// A descriptor set written in base64, as the configuration holds it.
    pub fn from_base64(text: &str) -> Result<Schema, String> {
        let bytes = wire::base64_decode(text).ok_or("not base64")?;
        Schema::parse(&bytes)
    }

    /// A serialized `FileDescriptorSet`.
    pub fn parse(bytes: &[u8]) -> Result<Schema, String> {
        Schema::read(bytes).map_err(|why| format!("not a FileDescriptorSet: {why}"))
    }

    fn read(mut bytes: &[u8]) -> Result<Schema, Error> {
        let mut s = Schema::default();
        let mut files = 0;
        while !bytes.is_empty() {
            if let (1, v) = next(&mut bytes)? {
                s.file(len(v)?)?;
                files += 1;
            }
        }
        if files == 0 {
            return Err("no file");
        }
        s.by_name = wire::order(s.types.len(), &|i, j| s.name(i) <= s.name(j));
        // Resolve the fields' types.
        let mut messages = std::mem::take(&mut s.messages);
        for f in messages.iter_mut().flat_map(|m| m.fields.iter_mut()) {
            let found = s.lookup(&f.type_name);
            // protoc always sets the type; a parser's unresolved
            // descriptor may leave it to the name.
            if f.ty == 0 {
                f.ty = if matches!(found, Some(Type::Message(_))) {
                    MESSAGE
                } else {
                    ENUM
                };
            }
            f.target = match (f.ty, found) {
                (MESSAGE, Some(Type::Message(i))) | (ENUM, Some(Type::Enum(i))) => Some(i),
                _ => None,
            };
        }
        s.messages = messages;
        Ok(s)
    }

    /// The output message type of the method at gRPC path `/pkg.Svc/Method`.
    pub fn output_of(&self, grpc_path: &str) -> Option<MessageRef> {
        let (_, output) = self.methods.iter().find(|(path, _)| path == grpc_path)?;
        self.message(output)
    }

    /// The message type of full name `pkg.Msg` (a leading dot is allowed).
    pub fn message(&self, full_name: &str) -> Option<MessageRef> {
        match self.lookup(full_name)? {
            Type::Message(i) => Some(MessageRef(i)),
            Type::Enum(_) => None,
        }
    }

    fn name(&self, i: usize) -> &str {
        self.types.get(i).map_or("", |t| t.0.as_str())
    }

    fn lookup(&self, type_name: &str) -> Option<Type> {
        let name = type_name.strip_prefix('.').unwrap_or(type_name);
        let at = self
            .by_name
            .binary_search_by(|&i| self.name(i).cmp(name))
            .ok()?;
        let &i = self.by_name.get(at)?;
        self.types.get(i).map(|t| t.1)
    }

    pub(super) fn desc(&self, m: usize) -> Option<&MessageDesc> {
        self.messages.get(m)
    }

    /// The name of value `number` of enum `e`.
    pub(super) fn enum_name(&self, e: usize, number: i32) -> Option<&str> {
        let values = self.enums.get(e)?;
        let (_, name) = values.iter().find(|(n, _)| *n == number)?;
        Some(name)
    }

    /// FileDescriptorProto: package 2, message_type 4, enum_type 5, service 6.
    fn file(&mut self, mut buf: &[u8]) -> Result<(), Error> {
        let package = string_field(buf, 2)?;
        while !buf.is_empty() {
            match next(&mut buf)? {
                (4, v) => self.message_type(len(v)?, package, 0)?,
                (5, v) => self.enum_type(len(v)?, package)?,
                (6, v) => self.service(len(v)?, package)?,
                _ => {}
            }
        }
        Ok(())
    }

    /// DescriptorProto: name 1, field 2, nested_type 3, enum_type 4, options
    /// 7 (MessageOptions: map_entry 7).
    fn message_type(&mut self, mut buf: &[u8], scope: &str, depth: usize) -> Result<(), Error> {
        if depth >= MAX_NESTING {
            return Err("messages nested too deep");
        }
        let index = self.messages.len();
        self.messages.push(MessageDesc::default());
        let full = join(scope, string_field(buf, 1)?);
        let mut desc = MessageDesc::default();
        while !buf.is_empty() {
            match next(&mut buf)? {
                (2, v) => desc.fields.push(field(len(v)?)?),
                (3, v) => self.message_type(len(v)?, &full, depth + 1)?,
                (4, v) => self.enum_type(len(v)?, &full)?,
                (7, v) => desc.map_entry = int_field(len(v)?, 7)? != 0,
                _ => {}
            }
        }
        if let Some(slot) = self.messages.get_mut(index) {
            *slot = desc;
        }
        self.types.push((full, Type::Message(index)));
        Ok(())
    }

    /// EnumDescriptorProto: name 1, value 2 (name 1, number 2).
    fn enum_type(&mut self, mut buf: &[u8], scope: &str) -> Result<(), Error> {
        let full = join(scope, string_field(buf, 1)?);
        let mut values = Vec::new();
        while !buf.is_empty() {
            if let (2, v) = next(&mut buf)? {
                let v = len(v)?;
                values.push((int_field(v, 2)? as i32, string_field(v, 1)?.to_string()));
            }
        }
        self.types.push((full, Type::Enum(self.enums.len())));
        self.enums.push(values);
        Ok(())
    }

    /// ServiceDescriptorProto: name 1, method 2 (name 1, output_type 3).
    fn service(&mut self, mut buf: &[u8], package: &str) -> Result<(), Error> {
        let full = join(package, string_field(buf, 1)?);
        while !buf.is_empty() {
            if let (2, v) = next(&mut buf)? {
                let v = len(v)?;
                let path = ["/", &full, "/", string_field(v, 1)?].concat();
                self.methods.push((path, string_field(v, 3)?.to_string()));
            }
        }
        Ok(())
    }
}

/// Why a descriptor set was refused.
type Error = &'static str;

const WIRE_TYPE: Error = "a field's wire type is not the descriptor's";

fn next<'a>(buf: &mut &'a [u8]) -> Result<Field<'a>, Error> {
    wire::field(buf).ok_or("not protobuf wire format")
}

/// The last string field `n` of `buf` ("" when absent).
fn string_field(mut buf: &[u8], n: u32) -> Result<&str, Error> {
    let mut out = "";
    while !buf.is_empty() {
        match next(&mut buf)? {
            (m, v) if m == n => out = string(v)?,
            _ => {}
        }
    }
    Ok(out)
}

/// The last varint field `n` of `buf` (0 when absent).
fn int_field(mut buf: &[u8], n: u32) -> Result<u64, Error> {
    let mut out = 0;
    while !buf.is_empty() {
        match next(&mut buf)? {
            (m, v) if m == n => out = int(v)?,
            _ => {}
        }
    }
    Ok(out)
}

fn len(v: Val<'_>) -> Result<&[u8], Error> {
    match v {
        Val::Len(b) => Ok(b),
        _ => Err(WIRE_TYPE),
    }
}

fn string(v: Val<'_>) -> Result<&str, Error> {
    std::str::from_utf8(len(v)?).map_err(|_| "a name is not UTF-8")
}

fn int(v: Val<'_>) -> Result<u64, Error> {
    match v {
        Val::Varint(n) => Ok(n),
        _ => Err(WIRE_TYPE),
    }
}

fn join(scope: &str, name: &str) -> String {
    let mut full = scope.to_string();
    if !full.is_empty() {
        full.push('.');
    }
    full.push_str(name);
    full
}

/// FieldDescriptorProto: name 1, number 3, label 4, type 5, type_name 6.
fn field(buf: &[u8]) -> Result<FieldDesc, Error> {
    Ok(FieldDesc {
        name: string_field(buf, 1)?.to_string(),
        number: int_field(buf, 3)? as u32,
        repeated: int_field(buf, 4)? == 3,
        ty: int_field(buf, 5)?.min(255) as u8,
        target: None,
        type_name: string_field(buf, 6)?.to_string(),
    })
}
