//! The ops of multi (all-or-nothing writes) and multiRead, and their results.
//!
//! On the wire each op is a [`MultiHeader`] (its type, done = false, err = -1) and its request
//! record; a header with `done` ends the list. Results are framed the same way, with the error
//! code in the header of a failed op's result.

use super::codes::op;
use super::data::{CreateMode, Stat};
use super::headers::MultiHeader;
use super::jute::{DecodeError, Jute, Reader, Writer};
use super::requests::{
    CheckVersionRequest, CreateRequest, CreateTtlRequest, DeleteRequest, SetAclRequest, SetDataRequest,
    WatchedPathRequest,
};

/// A write: a single write request, or one op of a multi. SetAcl is a write but never an op of a
/// multi: decoding refuses it there, as ZooKeeper does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WriteOp {
    Create(CreateRequest),
    /// A create answered with the new node's Stat as well as its path.
    Create2(CreateRequest),
    CreateContainer(CreateRequest),
    CreateTtl(CreateTtlRequest),
    Delete(DeleteRequest),
    SetData(SetDataRequest),
    SetAcl(SetAclRequest),
    Check(CheckVersionRequest),
}

/// An op of a multiRead.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReadOp {
    GetData(WatchedPathRequest),
    GetChildren(WatchedPathRequest),
}

/// The result of one op of a multi or multiRead.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OpResult {
    /// A create's result: the created path.
    Create {
        path: String,
    },
    /// A create2's, createContainer's or createTTL's result.
    Create2 {
        path: String,
        stat: Stat,
    },
    Delete,
    SetData {
        stat: Stat,
    },
    Check,
    GetData {
        data: Option<Vec<u8>>,
        stat: Stat,
    },
    GetChildren {
        children: Vec<String>,
    },
    /// A failed op, or in a failed multi every other op: 0 before the failing one, -2
    /// (RuntimeInconsistency) after it.
    Error {
        err: i32,
    },
}

impl WriteOp {
    pub fn op_code(&self) -> i32 {
        match self {
            WriteOp::Create(_) => op::CREATE,
            WriteOp::Create2(_) => op::CREATE2,
            WriteOp::CreateContainer(_) => op::CREATE_CONTAINER,
            WriteOp::CreateTtl(_) => op::CREATE_TTL,
            WriteOp::Delete(_) => op::DELETE,
            WriteOp::SetData(_) => op::SET_DATA,
            WriteOp::SetAcl(_) => op::SET_ACL,
            WriteOp::Check(_) => op::CHECK,
        }
    }

    pub fn path(&self) -> &str {
        match self {
            WriteOp::Create(r) | WriteOp::Create2(r) | WriteOp::CreateContainer(r) => &r.path,
            WriteOp::CreateTtl(r) => &r.path,
            WriteOp::Delete(r) => &r.path,
            WriteOp::SetData(r) => &r.path,
            WriteOp::SetAcl(r) => &r.path,
            WriteOp::Check(r) => &r.path,
        }
    }

    /// The request record, without the op code.
    pub fn put_body(&self, w: &mut Writer) {
        match self {
            WriteOp::Create(r) | WriteOp::Create2(r) | WriteOp::CreateContainer(r) => r.put(w),
            WriteOp::CreateTtl(r) => r.put(w),
            WriteOp::Delete(r) => r.put(w),
            WriteOp::SetData(r) => r.put(w),
            WriteOp::SetAcl(r) => r.put(w),
            WriteOp::Check(r) => r.put(w),
        }
    }

    /// The write of this op code; `None` if the code names no write.
    pub fn get_body(op_code: i32, r: &mut Reader<'_>) -> Result<Option<WriteOp>, DecodeError> {
        Ok(Some(match op_code {
            op::CREATE => WriteOp::Create(r.read()?),
            op::CREATE2 => WriteOp::Create2(r.read()?),
            op::CREATE_CONTAINER => WriteOp::CreateContainer(r.read()?),
            op::CREATE_TTL => WriteOp::CreateTtl(r.read()?),
            op::DELETE => WriteOp::Delete(r.read()?),
            op::SET_DATA => WriteOp::SetData(r.read()?),
            op::SET_ACL => WriteOp::SetAcl(r.read()?),
            op::CHECK => WriteOp::Check(r.read()?),
            _ => return Ok(None),
        }))
    }
}

impl ReadOp {
    pub fn op_code(&self) -> i32 {
        match self {
            ReadOp::GetData(_) => op::GET_DATA,
            ReadOp::GetChildren(_) => op::GET_CHILDREN,
        }
    }

    pub fn path(&self) -> &str {
        match self {
            ReadOp::GetData(r) | ReadOp::GetChildren(r) => &r.path,
        }
    }
}

/// The ops of a multi (op 14): writes other than SetAcl. ZooKeeper refuses a create whose flags are
/// no create mode while decoding, so the whole multi fails to decode.
pub fn read_write_ops(r: &mut Reader<'_>) -> Result<Vec<WriteOp>, DecodeError> {
    read_ops(r, |op_code, r| {
        let op = match op_code {
            op::SET_ACL => None,
            _ => WriteOp::get_body(op_code, r)?,
        };
        let op = op.ok_or(DecodeError::BadMultiOp(op_code))?;
        if let WriteOp::Create(c) | WriteOp::Create2(c) | WriteOp::CreateContainer(c) = &op {
            CreateMode::from_flags(c.flags)?;
        }
        Ok(op)
    })
}

/// The ops of a multiRead (op 22): getData and getChildren.
pub fn read_read_ops(r: &mut Reader<'_>) -> Result<Vec<ReadOp>, DecodeError> {
    read_ops(r, |op_code, r| match op_code {
        op::GET_DATA => Ok(ReadOp::GetData(r.read()?)),
        op::GET_CHILDREN => Ok(ReadOp::GetChildren(r.read()?)),
        _ => Err(DecodeError::BadMultiOp(op_code)),
    })
}

fn read_ops<T>(
    r: &mut Reader<'_>,
    mut item: impl FnMut(i32, &mut Reader<'_>) -> Result<T, DecodeError>,
) -> Result<Vec<T>, DecodeError> {
    let mut ops = Vec::new();
    loop {
        let header: MultiHeader = r.read()?;
        if header.done {
            return Ok(ops);
        }
        ops.push(item(header.op, r)?);
    }
}

pub fn write_write_ops(w: &mut Writer, ops: &[WriteOp]) {
    for op in ops {
        w.write(&MultiHeader { op: op.op_code(), done: false, err: -1 });
        op.put_body(w);
    }
    w.write(&MultiHeader::END);
}

pub fn write_read_ops(w: &mut Writer, ops: &[ReadOp]) {
    for op in ops {
        w.write(&MultiHeader { op: op.op_code(), done: false, err: -1 });
        match op {
            ReadOp::GetData(r) | ReadOp::GetChildren(r) => w.write(r),
        }
    }
    w.write(&MultiHeader::END);
}

impl OpResult {
    pub fn op_code(&self) -> i32 {
        match self {
            OpResult::Create { .. } => op::CREATE,
            OpResult::Create2 { .. } => op::CREATE2,
            OpResult::Delete => op::DELETE,
            OpResult::SetData { .. } => op::SET_DATA,
            OpResult::Check => op::CHECK,
            OpResult::GetData { .. } => op::GET_DATA,
            OpResult::GetChildren { .. } => op::GET_CHILDREN,
            OpResult::Error { .. } => op::ERROR,
        }
    }
}

/// A multi's (or multiRead's) results, as `MultiResponse` frames them.
pub fn write_results(w: &mut Writer, results: &[OpResult]) {
    for result in results {
        let err = match result {
            OpResult::Error { err } => *err,
            _ => 0,
        };
        w.write(&MultiHeader { op: result.op_code(), done: false, err });
        match result {
            OpResult::Create { path } => w.ustring(path),
            OpResult::Create2 { path, stat } => {
                w.ustring(path);
                w.write(stat);
            }
            OpResult::Delete | OpResult::Check => {}
            OpResult::SetData { stat } => w.write(stat),
            OpResult::GetData { data, stat } => {
                w.write(data);
                w.write(stat);
            }
            OpResult::GetChildren { children } => w.write(children),
            OpResult::Error { err } => w.int(*err),
        }
    }
    w.write(&MultiHeader::END);
}

pub fn read_results(r: &mut Reader<'_>) -> Result<Vec<OpResult>, DecodeError> {
    read_ops(r, |op_code, r| {
        Ok(match op_code {
            op::CREATE => OpResult::Create { path: r.read()? },
            op::CREATE2 => OpResult::Create2 { path: r.read()?, stat: r.read()? },
            op::DELETE => OpResult::Delete,
            op::SET_DATA => OpResult::SetData { stat: r.read()? },
            op::CHECK => OpResult::Check,
            op::GET_DATA => OpResult::GetData { data: r.read()?, stat: r.read()? },
            op::GET_CHILDREN => OpResult::GetChildren { children: r.read()? },
            op::ERROR => OpResult::Error { err: r.read()? },
            _ => return Err(DecodeError::BadMultiOp(op_code)),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(path: &str) -> WriteOp {
        WriteOp::Check(CheckVersionRequest { path: path.to_string(), version: 3 })
    }

    #[test]
    fn ops_are_framed_by_multi_headers() {
        let mut w = Writer::new();
        write_write_ops(&mut w, &[check("/a")]);
        let bytes = w.into_bytes();
        let mut expected = vec![0, 0, 0, 13, 0, 0xff, 0xff, 0xff, 0xff];
        expected.extend_from_slice(&[0, 0, 0, 2, b'/', b'a', 0, 0, 0, 3]);
        expected.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 1, 0xff, 0xff, 0xff, 0xff]);
        assert_eq!(bytes, expected);
        assert_eq!(read_write_ops(&mut Reader::new(&bytes)), Ok(vec![check("/a")]));
    }

    #[test]
    fn a_failed_results_header_carries_its_code() {
        let mut w = Writer::new();
        write_results(&mut w, &[OpResult::Error { err: -101 }]);
        let bytes = w.into_bytes();
        assert_eq!(bytes[..9], [0xff, 0xff, 0xff, 0xff, 0, 0xff, 0xff, 0xff, 0x9b]);
        assert_eq!(bytes[9..13], (-101i32).to_be_bytes());
        assert_eq!(read_results(&mut Reader::new(&bytes)), Ok(vec![OpResult::Error { err: -101 }]));
    }

    #[test]
    fn multi_refuses_reads_set_acl_and_bad_create_flags() {
        let mut w = Writer::new();
        write_read_ops(&mut w, &[ReadOp::GetData(WatchedPathRequest { path: "/a".into(), watch: false })]);
        assert_eq!(read_write_ops(&mut Reader::new(&w.into_bytes())), Err(DecodeError::BadMultiOp(op::GET_DATA)));

        let mut w = Writer::new();
        write_write_ops(&mut w, &[WriteOp::SetAcl(SetAclRequest::default())]);
        assert_eq!(read_write_ops(&mut Reader::new(&w.into_bytes())), Err(DecodeError::BadMultiOp(op::SET_ACL)));

        let mut w = Writer::new();
        write_write_ops(&mut w, &[WriteOp::Create(CreateRequest { flags: 9, ..Default::default() })]);
        assert_eq!(read_write_ops(&mut Reader::new(&w.into_bytes())), Err(DecodeError::BadCreateFlags(9)));
    }

    #[test]
    fn a_multi_without_its_end_header_is_truncated() {
        let mut w = Writer::new();
        write_write_ops(&mut w, &[check("/a")]);
        let bytes = w.into_bytes();
        assert!(matches!(
            read_write_ops(&mut Reader::new(&bytes[..bytes.len() - 9])),
            Err(DecodeError::Truncated { .. })
        ));
    }
}
