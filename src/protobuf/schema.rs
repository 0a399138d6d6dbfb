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
    pub(super) messages: Vec<MessageDesc>,
    pub(super) enums: Vec<EnumDesc>,
    /// Full message names (no leading dot), sorted, with their index.
    names: Vec<(String, usize)>,
    /// `/pkg.Service/Method` paths, sorted, with the output message.
    methods: Vec<(String, usize)>,
}

#[derive(Debug, Default)]
pub(super) struct MessageDesc {
    /// Sorted by number.
    pub fields: Vec<FieldDesc>,
    /// A map's entry type (`MessageOptions.map_entry`).
    pub map_entry: bool,
}

#[derive(Debug)]
pub(super) struct FieldDesc {
    pub name: String,
    pub number: u32,
    pub repeated: bool,
    /// `FieldDescriptorProto.Type` (1 double ... 18 sint64).
    pub ty: u8,
    /// The message type (message fields) or enum (enum fields), when in the set.
    pub target: Option<usize>,
}

#[derive(Debug, Default)]
pub(super) struct EnumDesc {
    pub values: Vec<(i32, String)>,
}

/// Field types (`FieldDescriptorProto.Type`).
pub(super) const MESSAGE: u8 = 11;
pub(super) const ENUM: u8 = 14;
const GROUP: u8 = 10;

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
        let mut b = Builder::default();
        for (n, v) in fields(bytes, "the set")? {
            if n == 1 {
                b.file(len(v, "file")?)?;
            }
        }
        if b.files == 0 {
            return Err(bad("no file"));
        }
        Ok(b.finish())
    }

    /// The output message type of the method at gRPC path `/pkg.Svc/Method`.
    pub fn output_of(&self, grpc_path: &str) -> Option<MessageRef> {
        lookup(&self.methods, grpc_path).map(MessageRef)
    }

    /// The message type of full name `pkg.Msg` (a leading dot is allowed).
    pub fn message(&self, full_name: &str) -> Option<MessageRef> {
        let name = full_name.strip_prefix('.').unwrap_or(full_name);
        lookup(&self.names, name).map(MessageRef)
    }

    pub(super) fn desc(&self, m: usize) -> Option<&MessageDesc> {
        self.messages.get(m)
    }

    /// The name of value `number` of enum `e`.
    pub(super) fn enum_name(&self, e: usize, number: i32) -> Option<&str> {
        let values = &self.enums.get(e)?.values;
        values
            .iter()
            .find(|(n, _)| *n == number)
            .map(|(_, name)| name.as_str())
    }
}

fn lookup(sorted: &[(String, usize)], key: &str) -> Option<usize> {
    let i = sorted.binary_search_by(|(k, _)| k.as_str().cmp(key)).ok()?;
    sorted.get(i).map(|(_, v)| *v)
}

fn bad(why: &str) -> String {
    format!("not a FileDescriptorSet: {why}")
}

fn fields<'a>(buf: &'a [u8], what: &str) -> Result<Vec<Field<'a>>, String> {
    wire::parse(buf).ok_or_else(|| bad(&format!("{what} is not a protobuf message")))
}

fn len<'a>(v: Val<'a>, what: &str) -> Result<&'a [u8], String> {
    match v {
        Val::Len(b) => Ok(b),
        _ => Err(bad(&format!("{what} is not length-delimited"))),
    }
}

fn string<'a>(v: Val<'a>, what: &str) -> Result<&'a str, String> {
    std::str::from_utf8(len(v, what)?).map_err(|_| bad(&format!("{what} is not UTF-8")))
}

fn int(v: Val<'_>, what: &str) -> Result<u64, String> {
    match v {
        Val::Varint(n) => Ok(n),
        _ => Err(bad(&format!("{what} is not a varint"))),
    }
}

/// A field as declared, its type name not resolved yet.
struct RawField<'a> {
    desc: FieldDesc,
    type_name: &'a str,
}

#[derive(Default)]
struct Builder<'a> {
    files: usize,
    /// Per message (index = message index): full name and fields.
    messages: Vec<(String, Vec<RawField<'a>>, bool)>,
    enums: Vec<(String, EnumDesc)>,
    /// (path, output type name)
    methods: Vec<(String, &'a str)>,
}

fn join(scope: &str, name: &str) -> String {
    if scope.is_empty() {
        name.to_string()
    } else {
        format!("{scope}.{name}")
    }
}

impl<'a> Builder<'a> {
    /// FileDescriptorProto: package 2, message_type 4, enum_type 5, service 6
    /// (fields come sorted by number: the package first).
    fn file(&mut self, buf: &'a [u8]) -> Result<(), String> {
        self.files += 1;
        let mut package = "";
        for (n, v) in fields(buf, "a file")? {
            match n {
                2 => package = string(v, "package")?,
                4 => self.message(len(v, "message_type")?, package, 0)?,
                5 => self.enumeration(len(v, "enum_type")?, package)?,
                6 => self.service(len(v, "service")?, package)?,
                _ => {}
            }
        }
        Ok(())
    }

    /// DescriptorProto: name 1, field 2, nested_type 3, enum_type 4, options 7.
    fn message(&mut self, buf: &'a [u8], scope: &str, depth: usize) -> Result<(), String> {
        if depth >= MAX_NESTING {
            return Err(bad("messages nested too deep"));
        }
        let index = self.messages.len();
        self.messages.push((String::new(), Vec::new(), false));
        let mut full = scope.to_string();
        let mut own = Vec::new();
        let mut map_entry = false;
        for (n, v) in fields(buf, "a message type")? {
            match n {
                1 => full = join(scope, string(v, "message name")?),
                2 => own.push(field(len(v, "field")?)?),
                3 => self.message(len(v, "nested_type")?, &full, depth + 1)?,
                4 => self.enumeration(len(v, "enum_type")?, &full)?,
                7 => {
                    for (n, v) in fields(len(v, "options")?, "message options")? {
                        if n == 7 {
                            map_entry = int(v, "map_entry")? != 0;
                        }
                    }
                }
                _ => {}
            }
        }
        if let Some(slot) = self.messages.get_mut(index) {
            *slot = (full, own, map_entry);
        }
        Ok(())
    }

    /// EnumDescriptorProto: name 1, value 2 (name 1, number 2).
    fn enumeration(&mut self, buf: &[u8], scope: &str) -> Result<(), String> {
        let mut full = scope.to_string();
        let mut desc = EnumDesc::default();
        for (n, v) in fields(buf, "an enum")? {
            match n {
                1 => full = join(scope, string(v, "enum name")?),
                2 => {
                    let (mut name, mut number) = ("", 0);
                    for (n, v) in fields(len(v, "enum value")?, "an enum value")? {
                        match n {
                            1 => name = string(v, "enum value name")?,
                            2 => number = int(v, "enum value number")? as i32,
                            _ => {}
                        }
                    }
                    desc.values.push((number, name.to_string()));
                }
                _ => {}
            }
        }
        self.enums.push((full, desc));
        Ok(())
    }

    /// ServiceDescriptorProto: name 1, method 2 (name 1, output_type 3).
    fn service(&mut self, buf: &'a [u8], package: &str) -> Result<(), String> {
        let mut full = String::new();
        for (n, v) in fields(buf, "a service")? {
            match n {
                1 => full = join(package, string(v, "service name")?),
                2 => {
                    let (mut name, mut output) = ("", "");
                    for (n, v) in fields(len(v, "method")?, "a method")? {
                        match n {
                            1 => name = string(v, "method name")?,
                            3 => output = string(v, "output_type")?,
                            _ => {}
                        }
                    }
                    self.methods.push((format!("/{full}/{name}"), output));
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn finish(self) -> Schema {
        let sorted = |names: Vec<(String, usize)>| wire::sort_by(names, &|a, b| a.0 <= b.0);
        let names = sorted(
            self.messages
                .iter()
                .enumerate()
                .map(|(i, m)| (m.0.clone(), i))
                .collect(),
        );
        let enum_names = sorted(
            self.enums
                .iter()
                .enumerate()
                .map(|(i, e)| (e.0.clone(), i))
                .collect(),
        );
        let resolve = |names: &[(String, usize)], type_name: &str| {
            lookup(names, type_name.strip_prefix('.').unwrap_or(type_name))
        };
        let messages = self
            .messages
            .into_iter()
            .map(|(_, raw, map_entry)| {
                let fields: Vec<FieldDesc> = raw
                    .into_iter()
                    .map(|RawField { mut desc, type_name }| {
                        // protoc always sets the type; a parser's
                        // unresolved descriptor may leave it to the name.
                        if desc.ty == 0 {
                            desc.ty = if resolve(&names, type_name).is_some() {
                                MESSAGE
                            } else {
                                ENUM
                            };
                        }
                        desc.target = match desc.ty {
                            MESSAGE | GROUP => resolve(&names, type_name),
                            ENUM => resolve(&enum_names, type_name),
                            _ => None,
                        };
                        desc
                    })
                    .collect();
                let fields = wire::sort_by(fields, &|a, b| a.number <= b.number);
                MessageDesc { fields, map_entry }
            })
            .collect();
        let methods = sorted(
            self.methods
                .iter()
                .filter_map(|(path, output)| Some((path.clone(), resolve(&names, output)?)))
                .collect(),
        );
        Schema {
            messages,
            enums: self.enums.into_iter().map(|(_, e)| e).collect(),
            names,
            methods,
        }
    }
}

/// FieldDescriptorProto: name 1, number 3, label 4, type 5, type_name 6.
fn field(buf: &[u8]) -> Result<RawField<'_>, String> {
    let mut f = RawField {
        desc: FieldDesc {
            name: String::new(),
            number: 0,
            repeated: false,
            ty: 0,
            target: None,
        },
        type_name: "",
    };
    for (n, v) in fields(buf, "a field")? {
        match n {
            1 => f.desc.name = string(v, "field name")?.to_string(),
            3 => f.desc.number = int(v, "field number")? as u32,
            4 => f.desc.repeated = int(v, "field label")? == 3,
            5 => f.desc.ty = int(v, "field type")?.min(255) as u8,
            6 => f.type_name = string(v, "type_name")?,
            _ => {}
        }
    }
    Ok(f)
}
