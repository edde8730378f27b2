//! TEMPORARY stub so the controller compiles before the parser lands.
#[derive(Clone, Debug)]
pub struct ParseOptions {
    pub column: String,
    pub headerless: bool,
}
impl Default for ParseOptions {
    fn default() -> Self {
        todo!()
    }
}
pub struct Source<'a> {
    pub name: String,
    pub bytes: &'a [u8],
}
pub fn parse_sources(_s: &[Source<'_>], _o: &ParseOptions) -> Result<UserList, ListError> {
    todo!()
}
#[derive(Debug, Default)]
pub struct UserList {
    pub users: Vec<UserEntry>,
    pub skipped_rows: u64,
    pub rejected: Vec<Rejection>,
    pub duplicates: Vec<Duplicate>,
    pub trimmed_values: u64,
    pub notes: Vec<String>,
}
impl UserList {
    pub fn digest(&self) -> String {
        todo!()
    }
}
#[derive(Debug, Clone)]
pub struct UserEntry {
    pub id: String,
    pub source: usize,
    pub row: u64,
}
#[derive(Debug)]
pub struct Rejection {
    pub source: usize,
    pub row: u64,
    pub reason: RejectReason,
}
#[derive(Debug, thiserror::Error)]
#[error("x")]
pub enum RejectReason {
    Empty,
}
#[derive(Debug)]
pub struct Duplicate {
    pub source: usize,
    pub row: u64,
    pub id: String,
    pub first_source: usize,
    pub first_row: u64,
}
#[derive(Debug, thiserror::Error)]
#[error("x")]
pub enum ListError {
    Empty,
}
