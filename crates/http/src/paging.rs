//! Lists in pages: the `?limit=` and `?cursor=` of every list route ([`Page`]), the opaque
//! cursor of lists ordered by a time and an id, and the `{items, next_cursor}` page built from
//! one item more than asked for ([`Items::paged`]). Path ids that are not ids ([`parse_id`]).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use utoipa::IntoParams;
use uuid::Uuid;

use crate::error::AppError;
use crate::extract::Items;

/// The most items a page holds.
pub(crate) const MAX_LIMIT: i64 = 200;

/// A page of a list.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct Page {
    /// How many items, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

impl Page {
    /// The page size asked for, 50 when none; `422` outside 1 to 200.
    pub fn limit(&self) -> Result<i64, AppError> {
        let limit = self.limit.unwrap_or(50);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(AppError::invalid("limit", "1 to 200"));
        }
        Ok(limit)
    }

    /// The position the cursor names (time and id of the previous page's last item).
    pub fn position(&self) -> Result<Option<(DateTime<Utc>, Uuid)>, AppError> {
        self.cursor.as_deref().map(decode_position).transpose()
    }
}

/// The opaque cursor of every list ordered by a time and an id: the position of the last item
/// of a page.
pub(crate) fn encode_position(at: DateTime<Utc>, id: Uuid) -> String {
    URL_SAFE_NO_PAD.encode(format!("{}|{}", at.to_rfc3339(), id))
}

pub(crate) fn decode_position(text: &str) -> Result<(DateTime<Utc>, Uuid), AppError> {
    let bad = || AppError::invalid("cursor", "not a cursor this server returned");
    let raw = URL_SAFE_NO_PAD.decode(text).map_err(|_| bad())?;
    let raw = String::from_utf8(raw).map_err(|_| bad())?;
    let (at, id) = raw.split_once('|').ok_or_else(bad)?;
    Ok((
        DateTime::parse_from_rfc3339(at)
            .map_err(|_| bad())?
            .with_timezone(&Utc),
        id.parse().map_err(|_| bad())?,
    ))
}

/// An id from the path; not an id at all is no such resource, the same answer as an unknown id.
pub(crate) fn parse_id(id: &str) -> Result<Uuid, AppError> {
    id.parse().map_err(|_| AppError::NotFound)
}

impl<T> Items<T> {
    /// The page of `limit` items from a read of `limit + 1`: the extra one, when there, says
    /// another page follows, whose cursor is the `position` of this page's last item.
    pub(crate) fn paged(
        mut items: Vec<T>,
        limit: i64,
        position: impl Fn(&T) -> (DateTime<Utc>, Uuid),
    ) -> Self {
        let next_cursor = if items.len() as i64 > limit {
            items.truncate(limit as usize);
            items.last().map(|item| {
                let (at, id) = position(item);
                encode_position(at, id)
            })
        } else {
            None
        };
        Items { items, next_cursor }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_position_round_trips_and_garbage_is_refused() {
        let at = DateTime::parse_from_rfc3339("2026-01-02T03:04:05.678901Z")
            .unwrap()
            .with_timezone(&Utc);
        let id = Uuid::now_v7();
        assert_eq!(decode_position(&encode_position(at, id)).unwrap(), (at, id));
        assert!(decode_position("not a cursor").is_err());
        assert!(decode_position(&URL_SAFE_NO_PAD.encode("x|y")).is_err());
    }

    #[test]
    fn one_item_more_than_the_limit_makes_a_next_cursor() {
        let at = Utc::now();
        let ids: Vec<Uuid> = (0..3).map(|_| Uuid::now_v7()).collect();
        let page = Items::paged(ids.clone(), 2, |id| (at, *id));
        assert_eq!(page.items, ids[..2]);
        assert_eq!(
            decode_position(page.next_cursor.as_deref().unwrap()).unwrap(),
            (at, ids[1])
        );
        let last = Items::paged(ids[..2].to_vec(), 2, |id| (at, *id));
        assert!(last.next_cursor.is_none());
    }

    #[test]
    fn limits_are_one_to_two_hundred() {
        let page = |limit| Page {
            limit,
            cursor: None,
        };
        assert_eq!(page(None).limit().unwrap(), 50);
        assert_eq!(page(Some(200)).limit().unwrap(), 200);
        assert!(page(Some(0)).limit().is_err());
        assert!(page(Some(201)).limit().is_err());
    }
}
