//! The synod's phases by hand: the seed's rules, one message at a time.

use tally_paxos::synod::{Acceptor, Learner, Message, Proposal, ProposalNumber, Proposer};

fn promise(acceptor: &mut Acceptor<&'static str>, prepare: &Message<&'static str>) -> Message<&'static str> {
    let Message::Prepare { number } = prepare else { panic!("not a prepare: {prepare:?}") };
    acceptor.on_prepare(*number)
}

fn accept(acceptor: &mut Acceptor<&'static str>, accept: &Message<&'static str>) -> Message<&'static str> {
    let Message::Accept(proposal) = accept else { panic!("not an accept: {accept:?}") };
    acceptor.on_accept(proposal.clone())
}

#[test]
fn a_value_one_acceptor_accepted_is_carried_forward_by_the_next_proposer() {
    let mut acceptors: Vec<Acceptor<&str>> = vec![Acceptor::default(); 3];
    let mut first = Proposer::new(11, 3, "a");
    let prepare = first.prepare();
    assert_eq!(first.on_message(1, promise(&mut acceptors[0], &prepare)), None);
    let accept_a = first.on_message(2, promise(&mut acceptors[1], &prepare)).expect("a majority promised");
    // Only acceptor 1 hears the Accept before the first proposer fails.
    assert!(matches!(accept(&mut acceptors[0], &accept_a), Message::Accepted(_)));

    let mut second = Proposer::new(12, 3, "b");
    let prepare = second.prepare();
    assert_eq!(prepare, Message::Prepare { number: ProposalNumber { round: 1, proposer: 12 } });
    assert_eq!(second.on_message(3, promise(&mut acceptors[2], &prepare)), None);
    let accept_b = second.on_message(1, promise(&mut acceptors[0], &prepare)).expect("a majority promised");
    let Message::Accept(Proposal { value, .. }) = &accept_b else { panic!("{accept_b:?}") };
    assert_eq!(*value, "a", "the accepted value must be carried forward");

    // The first proposer's late Accept is refused where the second's number was promised.
    assert!(matches!(accept(&mut acceptors[2], &accept_a), Message::Rejected { .. }));
    for id in [1, 3] {
        let accepted = accept(&mut acceptors[id as usize - 1], &accept_b);
        second.on_message(id, accepted);
    }
    assert_eq!(second.chosen(), Some(&"a"));
}

#[test]
fn an_acceptor_promises_only_higher_numbers() {
    let mut acceptor: Acceptor<u8> = Acceptor::default();
    let low = ProposalNumber { round: 1, proposer: 11 };
    let high = ProposalNumber { round: 1, proposer: 12 };
    assert!(matches!(acceptor.on_prepare(high), Message::Promise { accepted: None, .. }));
    assert_eq!(acceptor.on_prepare(low), Message::Rejected { number: low, promised: high });
    assert_eq!(acceptor.on_prepare(high), Message::Rejected { number: high, promised: high });
    assert_eq!(
        acceptor.on_accept(Proposal { number: low, value: 7 }),
        Message::Rejected { number: low, promised: high }
    );
    assert!(matches!(acceptor.on_accept(Proposal { number: high, value: 8 }), Message::Accepted(_)));
    assert_eq!(acceptor.accepted(), Some(&Proposal { number: high, value: 8 }));
}

#[test]
fn a_learner_learns_a_value_once_a_majority_accepted_it_under_one_number() {
    let mut learner = Learner::new(3);
    let first = ProposalNumber { round: 1, proposer: 11 };
    let second = ProposalNumber { round: 2, proposer: 12 };
    assert_eq!(learner.on_accepted(1, Proposal { number: first, value: 'x' }), None);
    // Two acceptances of one value under different numbers do not choose it.
    assert_eq!(learner.on_accepted(2, Proposal { number: second, value: 'x' }), None);
    assert_eq!(learner.on_accepted(3, Proposal { number: second, value: 'x' }), Some(&'x'));
}
