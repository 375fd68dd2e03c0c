//! Singlish's sentence-final particles ("ok lah", "like that lor", "not bad leh") as the
//! recogniser writes them, or leaves them out.
//!
//! Whisper was trained on standard English transcripts, which seldom write these particles: it
//! spells them as English words ("law", "low"), stretches them ("laaaaa"), or writes nothing.
//! So three things are done, each only where the text's position or the audio supports it:
//! - an elongated spelling (`la+h*`, `lo+r+`, `le+h+`…) is the particle: none is an English word;
//! - an English word that sounds like a particle ("law", "lo", "le") is the particle only at a
//!   clause end and not where English would put it ("the law.", "by law.");
//! - at every clause end the decoder is asked, on the audio, whether one of
//!   [`INSERTED_PARTICLES`] was said there ([`particle_sites`]; the forced decoding is
//!   `inference::whisper`'s insertion scoring), with [`PARTICLE_PRIOR`] in its favour.

use super::words::{split_words, Word};

/// The particles that close a Singlish clause (the list), each a target word.
pub const CLAUSE_END_PARTICLES: &[&str] = &["lah", "lor", "leh", "meh", "sia", "ah", "hor", "one"];

/// The particles listened for where the recogniser wrote none: [`CLAUSE_END_PARTICLES`] less
/// "ah" and "one". Whisper's training transcripts leave out hesitations ("ah") and its decoder
/// gives a clause-final "one" ("the red one") much of its likelihood from English itself, so
/// audio that supports either is no evidence of Singlish: on the real English recordings in
/// `../shared/data/real-speech` (AMI, NSC), where no particle was said, they came within 5.2
/// (one) and 7.8 (ah) nats of the text as decoded, the others no nearer than 11.6.
pub const INSERTED_PARTICLES: &[&str] = &["lah", "lor", "leh", "meh", "sia", "hor"];

/// Log-odds (nats) given to a particle at a clause end before the audio is heard: the decoder's
/// language model was trained on transcripts that leave particles out, so its likelihood of a
/// said particle is lower than its acoustics alone would give. A particle is inserted when its
/// log-likelihood with this prior beats the text as decoded.
///
/// Set from the scores where no particle was said (a false-alarm bound, not a fit to the
/// particles): over 131 clause ends without one (89 in the real AMI and NSC recordings, 42 in
/// espeak-ng sentences), the nearest of [`INSERTED_PARTICLES`] scored 11.6 nats below the text
/// as decoded; 6 keeps half of that as margin. Said particles (espeak-ng) scored 7 to 30 nats
/// below: the recogniser mostly hears them as an English word ("lunch, Lord", "today, Ray"),
/// which the spellings below and the correction tables handle, not an insertion.
pub const PARTICLE_PRIOR: f64 = 6.0;

/// Characters that end a clause after a word.
fn ends_clause(c: char) -> bool {
    matches!(c, '.' | ',' | '?' | '!' | ';' | ':' | '\u{2026}')
}

/// Whether the word `words[index]` of `text` ends a clause: punctuation right after it, or the
/// end of the text.
pub(super) fn at_clause_end(text: &str, words: &[Word], index: usize) -> bool {
    let rest = &text[words[index].end..];
    match rest.chars().next() {
        None => true,
        Some(c) if ends_clause(c) => true,
        Some(c) if c.is_whitespace() => rest.trim_start().is_empty(),
        _ => false,
    }
}

/// The particle an elongated spelling stands for: "laaaa", "lahh", "laar" → lah, "lorr", "lorh",
/// "looh" → lor, "lehh" → leh, "mehh" → meh, "siaa" → sia, "ahh" → ah, "horr" → hor, "waah" →
/// wah. The particle itself and shorter spellings are left to the correction tables.
pub fn elongated_particle(folded: &str) -> Option<&'static str> {
    // (particle, letters, which of them may repeat, whether the last must be there)
    let shapes: [(&str, &[(char, bool)]); 10] = [
        ("lah", &[('l', true), ('a', true), ('h', false)]),
        ("lah", &[('l', true), ('a', true), ('r', true)]),
        (
            "lor",
            &[('l', true), ('o', true), ('r', true), ('h', false)],
        ),
        ("lor", &[('l', true), ('o', true), ('h', true)]),
        ("leh", &[('l', true), ('e', true), ('h', true)]),
        ("meh", &[('m', true), ('e', true), ('h', true)]),
        (
            "sia",
            &[('s', true), ('i', true), ('a', true), ('h', false)],
        ),
        ("ah", &[('a', true), ('h', true)]),
        ("hor", &[('h', true), ('o', true), ('r', true)]),
        ("wah", &[('w', true), ('a', true), ('h', false)]),
    ];
    let stretched = |letters: &[(char, bool)]| -> bool {
        let mut chars = folded.chars().peekable();
        let mut longer = false;
        for &(letter, required) in letters {
            let mut n = 0;
            while chars.peek() == Some(&letter) {
                chars.next();
                n += 1;
            }
            if n == 0 && required {
                return false;
            }
            longer |= n > 1;
        }
        chars.next().is_none() && longer
    };
    shapes
        .iter()
        .find(|(_, letters)| stretched(letters))
        .map(|&(particle, _)| particle)
}

/// English words that sound like a particle, and the particle they are at a clause end.
pub const CLAUSE_END_SOUNDALIKES: &[(&str, &str)] = &[("law", "lor"), ("lo", "lor"), ("le", "leh")];

/// Words after which English itself ends a clause with "law" ("the law.", "by law.", "studying
/// law."): there a clause-final "law" stays English.
const LAW_IN_ENGLISH_AFTER: &[&str] = &[
    "the",
    "a",
    "by",
    "of",
    "in",
    "to",
    "and",
    "or",
    "my",
    "your",
    "his",
    "her",
    "its",
    "our",
    "their",
    "this",
    "that",
    "no",
    "any",
    "every",
    "against",
    "above",
    "under",
    "within",
    "criminal",
    "civil",
    "family",
    "martial",
    "common",
    "international",
    "tax",
    "case",
    "new",
    "old",
    "state",
    "federal",
    "local",
    "natural",
    "moral",
    "constitutional",
    "contract",
    "study",
    "studies",
    "studying",
    "studied",
    "practise",
    "practice",
    "practising",
    "practicing",
    "break",
    "breaks",
    "broke",
    "breaking",
    "obey",
    "obeys",
    "obeyed",
    "enforce",
    "enforced",
    "become",
    "became",
    "becomes",
    "pass",
    "passed",
    "murphy's",
    "murphy",
    "s",
    "english",
    "islamic",
    "copyright",
    "labour",
    "labor",
    "employment",
    "company",
    "patent",
];

/// The particle the word `words[index]` of `text` stands for by its position (see
/// [`CLAUSE_END_SOUNDALIKES`]), if any.
pub(super) fn soundalike_at_clause_end(
    text: &str,
    words: &[Word],
    index: usize,
) -> Option<&'static str> {
    let word = &words[index];
    let &(_, particle) = CLAUSE_END_SOUNDALIKES
        .iter()
        .find(|(spelling, _)| *spelling == word.folded)?;
    if !at_clause_end(text, words, index) || index == 0 {
        return None; // a clause of one word ("Law.", "Lo!") is English
    }
    let previous = &words[index - 1];
    // Only a word of the same clause counts as the one before.
    let between = &text[previous.end..word.start];
    let english_law =
        word.folded == "law" && LAW_IN_ENGLISH_AFTER.contains(&previous.folded.as_str());
    if between.chars().any(ends_clause) || english_law {
        return None;
    }
    Some(particle)
}

/// Where a particle may have been said and left out: the byte offset after each word that ends
/// a clause, unless that word or the next is a particle (already written), or the word lies in
/// or next to `taken` (a stretch another correction already rewrites).
pub fn particle_sites(text: &str, taken: &[std::ops::Range<usize>]) -> Vec<usize> {
    let words = split_words(text);
    let mut sites = Vec::new();
    for (index, word) in words.iter().enumerate() {
        if !at_clause_end(text, &words, index)
            || CLAUSE_END_PARTICLES.contains(&word.folded.as_str())
            || taken
                .iter()
                .any(|r| r.start < word.end + 1 && word.start < r.end + 1)
        {
            continue;
        }
        let next_is_particle = words
            .get(index + 1)
            .is_some_and(|next| CLAUSE_END_PARTICLES.contains(&next.folded.as_str()));
        if !next_is_particle {
            sites.push(word.end);
        }
    }
    sites
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elongated_spellings_are_their_particle() {
        for (spelling, particle) in [
            ("laaaaa", "lah"),
            ("lahh", "lah"),
            ("laaah", "lah"),
            ("laar", "lah"),
            ("lorr", "lor"),
            ("lorrh", "lor"),
            ("looh", "lor"),
            ("lehh", "leh"),
            ("leeh", "leh"),
            ("mehh", "meh"),
            ("siaa", "sia"),
            ("ahh", "ah"),
            ("aaah", "ah"),
            ("horr", "hor"),
            ("waah", "wah"),
            ("waaah", "wah"),
        ] {
            assert_eq!(elongated_particle(spelling), Some(particle), "{spelling}");
        }
        for word in [
            "lah", "la", "lor", "leh", "law", "low", "loo", "look", "lee", "meet", "see", "ah",
            "a", "horn", "hoorah", "wah", "was", "lamb", "hall", "llama", "aha", "sh", "",
        ] {
            assert_eq!(elongated_particle(word), None, "{word}");
        }
    }

    fn soundalike(text: &str) -> Vec<Option<&'static str>> {
        let words = split_words(text);
        (0..words.len())
            .map(|i| soundalike_at_clause_end(text, &words, i))
            .collect()
    }

    #[test]
    fn law_at_a_clause_end_is_lor_unless_english_puts_it_there() {
        assert_eq!(
            soundalike("we later can go eat lunch law"),
            [None, None, None, None, None, None, Some("lor")]
        );
        assert_eq!(soundalike("ok law, then we go")[1], Some("lor"));
        assert_eq!(soundalike("like that lo.")[2], Some("lor"));
        assert_eq!(soundalike("not bad le?")[2], Some("leh"));
        for english in [
            "It is against the law.",
            "She is studying law.",
            "This is required by law.",
            "The law is clear.",
            "Law.",
            "He broke the law, and ran.",
            "That is Murphy's law.",
            "Le Mans is a race.",
        ] {
            assert!(
                soundalike(english).iter().all(Option::is_none),
                "{english}: {:?}",
                soundalike(english)
            );
        }
    }

    #[test]
    fn sites_are_clause_ends_without_a_particle() {
        let text = " We go later. Ok lah, see you one. Can";
        let sites = particle_sites(text, &[]);
        let after: Vec<&str> = sites.iter().map(|&at| &text[at - 3..at]).collect();
        assert_eq!(after, ["ter", "Can"]);
        // A stretch another correction rewrites gets no site.
        let later = text.find("later").unwrap();
        let taken: Vec<std::ops::Range<usize>> = std::iter::once(later..later + 5).collect();
        assert_eq!(particle_sites(text, &taken).len(), 1);
        assert!(particle_sites("", &[]).is_empty());
        assert_eq!(particle_sites(" and then the", &[]).len(), 1);
    }
}
