//! HTTP dates (Twisted's `http.datetimeToString` / `stringToDatetime`): the one format a
//! sender writes (`Sun, 06 Nov 1994 08:49:37 GMT`, RFC 9110's IMF-fixdate) and the three a
//! recipient must read (that one, the obsolete RFC 850 form and C's `asctime`).
//!
//! Dates are whole seconds since the Unix epoch, in UTC; nothing here reads a time zone
//! database. Days are converted with the proleptic Gregorian calendar arithmetic of
//! "days from civil" (no table, no loop), so any date from 1970 to year 9999 round-trips.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Days since 1970-01-01 of a (year, month 1-12, day 1-31) date.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// (year, month 1-12, day 1-31) of a day count since 1970-01-01.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (
        if m <= 2 {
            yoe + era * 400 + 1
        } else {
            yoe + era * 400
        },
        m,
        d,
    )
}

/// `t` as an HTTP date (IMF-fixdate). Times before 1970 are written as the epoch.
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// let t = UNIX_EPOCH + Duration::from_secs(784_111_777);
/// assert_eq!(twistor::web::date::http_date(t), "Sun, 06 Nov 1994 08:49:37 GMT");
/// ```
pub fn http_date(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let mut out = Vec::with_capacity(29);
    write_http_date(&mut out, secs);
    // Only ASCII was written.
    String::from_utf8(out).unwrap_or_default()
}

/// Appends the HTTP date of `secs` seconds after the epoch (29 bytes), without going
/// through `format!`: responses write one per file (`Last-Modified`).
///
/// ```
/// let mut out = b"Last-Modified: ".to_vec();
/// twistor::web::date::write_http_date(&mut out, 784_111_777);
/// assert_eq!(out, b"Last-Modified: Sun, 06 Nov 1994 08:49:37 GMT");
/// ```
pub fn write_http_date(out: &mut Vec<u8>, secs: u64) {
    out.extend_from_slice(&http_date_bytes(secs));
}

/// The HTTP date of `secs` seconds after the epoch, as its 29 bytes.
///
/// ```
/// assert_eq!(&twistor::web::date::http_date_bytes(0), b"Thu, 01 Jan 1970 00:00:00 GMT");
/// ```
pub fn http_date_bytes(secs: u64) -> [u8; 29] {
    // Beyond year 9999 the four-digit year would not hold.
    let secs = secs.min(253_402_300_799) as i64;
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let day = DAYS[days.rem_euclid(7) as usize].as_bytes();
    let month = MONTHS[(m - 1) as usize].as_bytes();
    let digit = |n: i64| b'0' + n as u8;
    let (h, mi, s) = (rem / 3600, rem % 3600 / 60, rem % 60);
    let d = i64::from(d);
    [
        day[0],
        day[1],
        day[2],
        b',',
        b' ',
        digit(d / 10),
        digit(d % 10),
        b' ',
        month[0],
        month[1],
        month[2],
        b' ',
        digit(y / 1000),
        digit(y / 100 % 10),
        digit(y / 10 % 10),
        digit(y % 10),
        b' ',
        digit(h / 10),
        digit(h % 10),
        b':',
        digit(mi / 10),
        digit(mi % 10),
        b':',
        digit(s / 10),
        digit(s % 10),
        b' ',
        b'G',
        b'M',
        b'T',
    ]
}

fn month(name: &[u8]) -> Option<u32> {
    MONTHS
        .iter()
        .position(|m| m.as_bytes().eq_ignore_ascii_case(name))
        .map(|i| i as u32 + 1)
}

fn number(s: &[u8]) -> Option<u32> {
    if s.is_empty() || s.len() > 4 || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    s.iter()
        .try_fold(0u32, |n, &b| Some(n * 10 + u32::from(b - b'0')))
}

fn clock(s: &[u8]) -> Option<(u32, u32, u32)> {
    let mut it = s.split(|&b| b == b':');
    let (h, m, sec) = (it.next()?, it.next()?, it.next()?);
    if it.next().is_some() || h.len() != 2 || m.len() != 2 || sec.len() != 2 {
        return None;
    }
    let (h, m, sec) = (number(h)?, number(m)?, number(sec)?);
    // 60: a leap second, which some clocks write.
    (h < 24 && m < 60 && sec <= 60).then_some((h, m, sec))
}

fn to_time(y: i64, mo: u32, d: u32, (h, mi, s): (u32, u32, u32)) -> Option<SystemTime> {
    if !(1970..=9999).contains(&y) || !(1..=31).contains(&d) {
        return None;
    }
    let days = days_from_civil(y, mo, d);
    // 31 February and the like: the date must survive the round trip.
    if civil_from_days(days) != (y, mo, d) {
        return None;
    }
    let secs = days * 86_400 + i64::from(h * 3600 + mi * 60 + s);
    Some(UNIX_EPOCH + Duration::from_secs(secs as u64))
}

/// Reads an HTTP date in any of the three forms; `None` for anything else (a recipient
/// treats an unreadable date as absent).
///
/// ```
/// use twistor::web::date::{http_date, parse_http_date};
/// for s in [
///     "Sun, 06 Nov 1994 08:49:37 GMT",
///     "Sunday, 06-Nov-94 08:49:37 GMT",
///     "Sun Nov  6 08:49:37 1994",
/// ] {
///     let t = parse_http_date(s.as_bytes()).unwrap();
///     assert_eq!(http_date(t), "Sun, 06 Nov 1994 08:49:37 GMT");
/// }
/// assert_eq!(parse_http_date(b"yesterday"), None);
/// ```
pub fn parse_http_date(s: &[u8]) -> Option<SystemTime> {
    let s = s.trim_ascii();
    let parts: Vec<&[u8]> = s.split(|&b| b == b' ').filter(|p| !p.is_empty()).collect();
    match parts.as_slice() {
        // IMF-fixdate: Sun, 06 Nov 1994 08:49:37 GMT
        [wd, d, mo, y, t, gmt] if wd.ends_with(b",") && *gmt == b"GMT" => {
            to_time(i64::from(number(y)?), month(mo)?, number(d)?, clock(t)?)
        }
        // RFC 850: Sunday, 06-Nov-94 08:49:37 GMT
        [wd, dmy, t, gmt] if wd.ends_with(b",") && *gmt == b"GMT" => {
            let mut it = dmy.split(|&b| b == b'-');
            let (d, mo, y) = (it.next()?, it.next()?, it.next()?);
            if it.next().is_some() || y.len() != 2 {
                return None;
            }
            // Two-digit years: the nearest century that is not more than 50 years ahead.
            let y = i64::from(number(y)?);
            let y = if y < 70 { 2000 + y } else { 1900 + y };
            to_time(y, month(mo)?, number(d)?, clock(t)?)
        }
        // asctime: Sun Nov  6 08:49:37 1994
        [_wd, mo, d, t, y] => to_time(i64::from(number(y)?), month(mo)?, number(d)?, clock(t)?),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_round_trip_over_centuries() {
        for days in (0..3_000_000).step_by(997) {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }

    #[test]
    fn leap_days_and_impossible_dates() {
        assert!(parse_http_date(b"Thu, 29 Feb 2024 00:00:00 GMT").is_some());
        assert!(parse_http_date(b"Thu, 29 Feb 2023 00:00:00 GMT").is_none());
        assert!(parse_http_date(b"Thu, 31 Apr 2024 00:00:00 GMT").is_none());
        assert!(parse_http_date(b"Thu, 01 Jan 2024 24:00:00 GMT").is_none());
        assert!(parse_http_date(b"Thu, 01 Jan 2024 00:00:00 PST").is_none());
        assert!(parse_http_date(b"Thu, 01 Jan 2024 0:0:0 GMT").is_none());
    }

    #[test]
    fn written_dates_parse_back_to_their_second() {
        for secs in (0..253_402_300_799u64).step_by(7_777_777_777).chain([
            0,
            951_782_400, // 29 Feb 2000
            253_402_300_799,
        ]) {
            let mut out = Vec::new();
            write_http_date(&mut out, secs);
            assert_eq!(out.len(), 29, "{}", String::from_utf8_lossy(&out));
            let back = parse_http_date(&out).expect("a written date parses");
            assert_eq!(back, UNIX_EPOCH + Duration::from_secs(secs));
        }
        let mut far = Vec::new();
        write_http_date(&mut far, u64::MAX);
        assert_eq!(far, b"Fri, 31 Dec 9999 23:59:59 GMT");
    }

    #[test]
    fn epoch_and_before() {
        assert_eq!(http_date(UNIX_EPOCH), "Thu, 01 Jan 1970 00:00:00 GMT");
        let before = UNIX_EPOCH - Duration::from_secs(10);
        assert_eq!(http_date(before), "Thu, 01 Jan 1970 00:00:00 GMT");
    }
}
