//! Countries and continents for placing media near clients (cluster
//! facts 6.8, 6.9): proxies in the client's country first, then those on
//! the client's continents (extended by `[continent-overrides]`), then the
//! rest.

/// ISO 3166 country codes per continent. Countries on two continents are
/// listed under both.
const CONTINENTS: &[(&str, &str)] = &[
    ("AF", "DZ AO BJ BW BF BI CM CV CF TD KM CG CD CI DJ EG GQ ER ET GA GM GH GN GW KE LS LR LY MG MW ML MR MU YT MA MZ NA NE NG RE RW SH ST SN SC SL SO ZA SS SD SZ TZ TG TN UG EH ZM ZW"),
    ("AN", "AQ BV GS HM TF"),
    ("AS", "AF AM AZ BH BD BT IO BN KH CN CX CC CY EG GE HK IN ID IR IQ IL JP JO KZ KP KR KW KG LA LB MO MY MV MN MM NP OM PK PS PH QA RU SA SG LK SY TW TJ TH TL TR TM AE UZ VN YE"),
    ("EU", "AX AL AD AM AT AZ BY BE BA BG HR CY CZ DK EE FO FI FR GE DE GI GR GG HU IS IE IM IT JE KZ XK LV LI LT LU MT MD MC ME NL MK NO PL PT RO RU SM RS SK SI ES SJ SE CH TR UA GB VA"),
    ("NA", "AI AG AW BS BB BZ BM BQ VG CA KY CR CU CW DM DO SV GL GD GP GT HT HN JM MQ MX MS NI PA PR BL KN LC MF PM VC SX TT TC US VI UM"),
    ("SA", "AR BO BR CL CO EC FK GF GY PY PE SR UY VE"),
    ("OC", "AS AU CK FJ PF GU KI MH FM NR NC NZ NU NF MP PW PG PN WS SB TK TO TV UM VU WF"),
];

/// A valid two-letter country code (pseudo countries such as `loopback`
/// are not).
pub fn is_country(s: &str) -> bool {
    s.len() == 2 && s.bytes().all(|b| b.is_ascii_uppercase())
}

/// The continents of a country.
pub fn continents(country: &str) -> Vec<&'static str> {
    CONTINENTS
        .iter()
        .filter(|(_, list)| list.split(' ').any(|c| c == country))
        .map(|(cont, _)| *cont)
        .collect()
}

/// How close a place is to a client: 0 same country, 1 same continent,
/// 2 elsewhere or unknown.
pub fn distance(
    client: Option<&str>,
    place: Option<&str>,
    continent_overrides: &[(String, Vec<String>)],
) -> u8 {
    let (Some(client), Some(place)) = (
        client.filter(|c| is_country(c)),
        place.filter(|c| is_country(c)),
    ) else {
        return 2;
    };
    if client == place {
        return 0;
    }
    let mut wanted: Vec<String> = continents(client).into_iter().map(str::to_owned).collect();
    for (from, to) in continent_overrides {
        if wanted.iter().any(|w| w == from) {
            wanted.extend(to.iter().cloned());
        }
    }
    if continents(place)
        .iter()
        .any(|c| wanted.iter().any(|w| w == c))
    {
        1
    } else {
        2
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places() {
        assert_eq!(distance(Some("DE"), Some("DE"), &[]), 0);
        assert_eq!(distance(Some("DE"), Some("FR"), &[]), 1);
        assert_eq!(distance(Some("DE"), Some("US"), &[]), 2);
        assert_eq!(
            distance(Some("RU"), Some("JP"), &[]),
            1,
            "Russia is in Asia too"
        );
        assert_eq!(distance(Some("ZA"), Some("DE"), &[]), 2);
        let af_eu = vec![("AF".to_owned(), vec!["EU".to_owned()])];
        assert_eq!(distance(Some("ZA"), Some("DE"), &af_eu), 1);
        assert_eq!(distance(None, Some("DE"), &[]), 2);
        assert_eq!(distance(Some("loopback"), Some("DE"), &[]), 2);
    }
}
