//! The header fields tollgate itself puts on a request it forwards (`Host`, `X-Forwarded-*`,
//! the identity headers), kept beside the client's header map rather than inserted into it.
//!
//! Every name added here has first been removed from the client's map, so the two never
//! share a name. Writing the client's fields and then these is therefore the same message
//! as inserting these into the map, without hashing each name into it on every request.
//! Senders that take a whole map (the shared pool) get them merged in.

use http::{HeaderMap, HeaderName, HeaderValue};

/// Fields that tollgate adds to a forwarded request, in the order they were added.
#[derive(Debug, Default)]
pub struct AddedFields {
    fields: Vec<(HeaderName, HeaderValue)>,
}

impl AddedFields {
    /// Room for `n` fields.
    pub fn with_capacity(n: usize) -> AddedFields {
        AddedFields {
            fields: Vec::with_capacity(n),
        }
    }

    /// Sets `name` to `value`, replacing what was set for it before (as a map insert does).
    pub fn insert(&mut self, name: HeaderName, value: HeaderValue) {
        // Lengths first: the names added side by side nearly always differ in length.
        let len = name.as_str().len();
        match self
            .fields
            .iter_mut()
            .find(|(n, _)| n.as_str().len() == len && *n == name)
        {
            Some(field) => field.1 = value,
            None => self.fields.push((name, value)),
        }
    }

    /// The value set for `name`.
    pub fn get(&self, name: &HeaderName) -> Option<&HeaderValue> {
        self.fields.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    /// The fields, in the order they were first set.
    pub fn iter(&self) -> impl Iterator<Item = (&HeaderName, &HeaderValue)> {
        self.fields.iter().map(|(n, v)| (n, v))
    }

    /// Puts the fields into `headers`, each replacing any field of its name there.
    pub fn merge_into(self, headers: &mut HeaderMap) {
        headers.reserve(self.fields.len());
        for (name, value) in self.fields {
            headers.insert(name, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::header::HOST;

    #[test]
    fn later_values_replace_earlier_ones_in_place() {
        let mut added = AddedFields::with_capacity(4);
        added.insert(
            HeaderName::from_static("x-user-id"),
            HeaderValue::from_static("1"),
        );
        added.insert(HOST, HeaderValue::from_static("app.test"));
        added.insert(
            HeaderName::from_static("x-user-id"),
            HeaderValue::from_static("2"),
        );
        let written: Vec<_> = added
            .iter()
            .map(|(n, v)| (n.as_str(), v.to_str().unwrap()))
            .collect();
        assert_eq!(written, [("x-user-id", "2"), ("host", "app.test")]);
        assert_eq!(added.get(&HOST).unwrap(), "app.test");

        let mut map = HeaderMap::new();
        map.append("x-user-id", HeaderValue::from_static("spoofed"));
        map.append("x-user-id", HeaderValue::from_static("spoofed too"));
        map.append("accept", HeaderValue::from_static("*/*"));
        added.merge_into(&mut map);
        let ids: Vec<_> = map.get_all("x-user-id").iter().collect();
        assert_eq!(ids, ["2"]);
        assert_eq!(map["host"], "app.test");
        assert_eq!(map["accept"], "*/*");
    }
}
