//! The original app's Singlish examples and correction lists, written out literally from
//! `reference/original-app.md`, run through the public API.

use std::collections::BTreeMap;

use lahstats_worker::singlish::{
    builtin_target_words, count_singlish, Corrector, WordCounter, ENGLISH_LOOKALIKES,
    PHRASE_CORRECTIONS, WORD_CORRECTIONS,
};

fn counts(pairs: &[(&str, i32)]) -> BTreeMap<String, i32> {
    pairs.iter().map(|&(w, n)| (w.to_owned(), n)).collect()
}

fn count(text: &str) -> BTreeMap<String, i32> {
    count_singlish(text, &Corrector::new(), &WordCounter::builtin()).1
}

#[test]
fn the_original_counting_examples() {
    assert_eq!(count("walao that's crazy"), counts(&[("walao", 1)]));
    assert_eq!(count("lah lah lah you know lah"), counts(&[("lah", 4)]));
    assert_eq!(
        count("walao sia this is shiok"),
        counts(&[("walao", 1), ("sia", 1), ("shiok", 1)])
    );
    assert_eq!(count("WALAO Walao walao"), counts(&[("walao", 3)]));
    assert_eq!(count("salah is a different word"), counts(&[]));
    assert_eq!(count("malaysia is a beautiful country"), counts(&[]));
    assert_eq!(
        count("walao! lah... sia?"),
        counts(&[("walao", 1), ("lah", 1), ("sia", 1)])
    );
    assert_eq!(
        count("(walao) [lah] {sia} 'shiok' \"sian\""),
        counts(&[
            ("walao", 1),
            ("lah", 1),
            ("sia", 1),
            ("shiok", 1),
            ("sian", 1)
        ])
    );
    assert_eq!(count("hello how are you today"), counts(&[]));
    assert_eq!(count(""), counts(&[]));
}

#[test]
fn the_original_correction_examples() {
    let corrector = Corrector::new();
    assert_eq!(
        corrector.correct("while up why you do that"),
        "walao why you do that"
    );
    // The original's test says "walao eh"; the reference's list also has "wa lao eh" → walao.
    // We keep the spoken "eh" (see PHRASE_CORRECTIONS), so both spellings give "walao eh".
    assert_eq!(corrector.correct("wa lao eh"), "walao eh");
    assert_eq!(corrector.correct("wah lao eh"), "walao eh");
    assert_eq!(count("wa lao eh"), counts(&[("walao", 1), ("eh", 1)]));
    assert_eq!(count("walao eh"), count("wah lao eh"));
}

#[test]
fn the_original_bugs_do_not_recur() {
    let corrector = Corrector::new();
    for unchanged in ["paiseh lah", "kaypoh", "I chopped it", "she okay"] {
        assert_eq!(corrector.correct(unchanged), unchanged);
    }
    assert_eq!(corrector.correct("she ok"), "shiok");
    assert_eq!(corrector.correct("la la"), "lah lah");
    assert_eq!(count("paiseh lah"), counts(&[("paiseh", 1), ("lah", 1)]));
    assert_eq!(count("kaypoh"), counts(&[("kaypoh", 1)]));
}

/// The reference's phrase corrections, copied as text (not from the code's table), so a typo or
/// a missing spelling in the code fails here.
const REFERENCE_PHRASES: &str = "\
walao ← while up, wah lao eh, wa lao eh, wah lao, wa lao, wah low, wa low, while ah, wah lau, wa lau, wah liao, wa liao, while low, wah lei, why lao, why low, wah la
cheebai ← cheap buy, chee bye, chi bye, chee bai, chi bai, chee by, chi by, cb, c b, see bee
lanjiao ← lunch hour, lan jiao, lan chow, lan chiao, lun jiao, lan chio, lunchow, lan jio
kanina ← can nina, kar ni na, ka ni na, car nina, knn, k n n
nabei ← nah bay, na bei, nah bei, na beh, nah beh
paiseh ← pie say, pai seh, pie seh, pai say, pie se, pai se, paise
shiok ← shook, she ok, shoe ok, shi ok
alamak ← ala mak, allah mak, a la mak, allamak, aller mak
aiyo ← ai yo, ai yoh, eye yo, aye yo
aiyah ← aiya, ai ya, ai yah, eye yah
jialat ← jia lat, gia lat, jia lut, jee ah lat, gia lut
bojio ← bo jio, boh jio, bo gio, never jio, boh gio
sia ← see ya, see ah, siah, si ah
sian ← see an, si an, see en, si en
kiasu ← kia su, key ah su
kiasi ← kia si, key ah si
bodoh ← boh doh, bo doh
suaku ← sua ku, swah ku
lepak ← le pak, lay pak
chope ← chop
makan ← ma kan
gostan ← go stan, go stun
sibei ← si bei, see bay, si bay
atas ← ah tas, ar tas
kaypoh ← kay poh, kae poh, kaypo, kpo
steady ← steady pom pi pi
goondu ← goon du, gun du";

/// The reference's single-word corrections, copied as text.
const REFERENCE_WORDS: &str = "\
lah ← la, laa, laaa, ler
lor ← low, loh
sia ← seh
meh ← mah
ah ← arh
eh ← err
shiok ← shio";

#[test]
fn every_reference_spelling_becomes_its_word_and_counts_once() {
    let corrector = Corrector::new();
    let counter = WordCounter::builtin();
    let mut checked = 0;
    for line in REFERENCE_PHRASES.lines().chain(REFERENCE_WORDS.lines()) {
        let (word, spellings) = line.split_once(" ← ").expect("a reference line");
        for spelling in spellings.split(", ") {
            // The one deliberate departure: "… eh" keeps its "eh" (see the test above), untouched
            // and so still in capitals.
            let expected = if spelling.ends_with(" eh") {
                format!("{word} EH")
            } else {
                word.to_owned()
            };
            let sentence = format!("Oh, {}! Really?", spelling.to_uppercase());
            let (corrected, found) = count_singlish(&sentence, &corrector, &counter);
            assert_eq!(corrected, format!("Oh, {expected}! Really?"), "{spelling}");
            assert_eq!(found.get(word), Some(&1), "{spelling}: {found:?}");
            checked += 1;
        }
    }
    assert_eq!(checked, 114 + 11);
}

#[test]
fn leh_and_huh_stay_as_they_are() {
    let corrector = Corrector::new();
    assert_eq!(corrector.correct("Leh, huh?"), "Leh, huh?");
    assert_eq!(count("Leh, huh?"), counts(&[("leh", 1), ("huh", 1)]));
}

#[test]
fn a_counter_from_database_words_matches_the_builtin_one() {
    let shouted: Vec<String> = builtin_target_words()
        .iter()
        .map(|w| w.to_uppercase())
        .collect();
    let counter = WordCounter::new(&shouted);
    let (_, found) = count_singlish("Walao, la! can or cannot?", &Corrector::new(), &counter);
    assert_eq!(
        found,
        counts(&[("WALAO", 1), ("LAH", 1), ("CAN", 1), ("CANNOT", 1)])
    );
}

/// The lookalikes are English: every word of each is in Debian's English word list (`wamerican`,
/// which scripts/setup installs), but for the colloquial "ya".
#[test]
fn english_lookalikes_are_english_words() {
    let list = std::fs::read_to_string("/usr/share/dict/american-english")
        .expect("/usr/share/dict/american-english: install wamerican (scripts/setup does)");
    let english: std::collections::HashSet<String> =
        list.lines().map(|w| w.trim().to_lowercase()).collect();
    for spelling in ENGLISH_LOOKALIKES {
        for word in spelling.split(' ') {
            assert!(
                word == "ya" || english.contains(word),
                "{word} of {spelling:?} is not in the English word list"
            );
        }
        assert!(
            PHRASE_CORRECTIONS
                .iter()
                .chain(WORD_CORRECTIONS)
                .any(|(_, spellings)| spellings.contains(spelling)),
            "{spelling} is in no correction table"
        );
    }
}

/// Plain English phrases the tables list become target words only with the audio's support;
/// the recogniser's own spellings of Singlish sounds are corrected as they stand.
#[test]
fn english_phrases_need_evidence_and_singlish_spellings_do_not() {
    let corrector = Corrector::new();
    for text in [
        "Let us meet during the lunch hour.",
        "See ya tomorrow.",
        "Please chop the onions.",
        "Is she ok with it?",
        "The price is low.",
        "Can Nina come too?",
    ] {
        let found = corrector.candidates(text);
        assert!(!found.is_empty(), "{text}");
        assert!(found.iter().all(|c| c.needs_evidence), "{text}: {found:?}");
    }
    for (text, word) in [
        ("wah lao, so long", "walao"),
        ("ok la", "lah"),
        ("ai yo", "aiyo"),
        ("so pai seh", "paiseh"),
        ("bo jio", "bojio"),
    ] {
        let found = corrector.candidates(text);
        assert_eq!(found.len(), 1, "{text}");
        assert!(!found[0].needs_evidence, "{text}");
        assert_eq!(found[0].target(), Some(word));
    }
    // A target word an English phrase resembles is weighed against that phrase.
    let found = corrector.candidates("Sia, so shiok.");
    assert_eq!(found.len(), 2);
    assert_eq!(found[0].readings, vec!["see ya"]);
    assert!(found[0].needs_evidence && found[0].target().is_none());
    assert_eq!(found[1].readings, vec!["shook", "she ok"]);
}
