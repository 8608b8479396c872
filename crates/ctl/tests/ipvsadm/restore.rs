//! `-R` as ipvsadm 1.31 reads it: tokens, dropped `ipvsadm` words, no comments, abort on a
//! parse error, continue on a director error, the last line's status.

use masq_core::control::Control;

use crate::{director, now, run_full, sh};

fn restore(m: &dyn Control, input: &str) -> masq_ctl::Outcome {
    run_full(m, "ipvsadm", &["-R"], Some(input))
}

const TRY: &str = "Try `ipvsadm -h' or 'ipvsadm --help' for more information.\n";

#[test]
fn lines_may_start_with_ipvsadm_and_use_any_blank() {
    let d = director();
    let m = d.control(now());
    let o = restore(
        &m,
        "ipvsadm -A -t 10.0.0.1:80 -s rr\n\n\t-a\t-t 10.0.0.1:80 ipvsadm -r 10.0.0.2 -m\r\n-a -t 10.0.0.1:80 -r 10.0.0.3 -m -w 2",
    );
    assert_eq!((o.stdout.as_str(), o.stderr.as_str(), o.code), ("", "", 0));
    assert_eq!(
        sh(&m, "-S -n").stdout,
        "-A -t 10.0.0.1:80 -s rr\n-a -t 10.0.0.1:80 -r 10.0.0.2:80 -m -w 1\n-a -t 10.0.0.1:80 -r 10.0.0.3:80 -m -w 2\n"
    );
}

#[test]
fn no_comment_support() {
    let d = director();
    let m = d.control(now());
    let o = restore(&m, "-A -t 10.0.0.1:80\n# a comment\n-A -t 10.0.0.2:80\n");
    assert_eq!(
        (o.stdout.as_str(), o.stderr.as_str(), o.code),
        ("", TRY, 255)
    );
    assert_eq!(sh(&m, "-S -n").stdout, "-A -t 10.0.0.1:80 -s wlc\n");
    let d = director();
    let m = d.control(now());
    let o = restore(&m, "-A -t 10.0.0.1:80 # trailing\n-A -t 10.0.0.2:80\n");
    assert_eq!(
        (o.stdout.as_str(), o.stderr.as_str(), o.code),
        ("", "unexpected argument #\n", 2)
    );
    assert_eq!(sh(&m, "-S -n").stdout, "");
}

#[test]
fn validation_error_aborts_director_error_continues() {
    let d = director();
    let m = d.control(now());
    let o = restore(
        &m,
        "-A -t 10.0.0.1:80\n-A -t 10.0.0.1:80\n-A -t 10.0.0.2:80\n-A -t 10.0.0.3:80 -w 1\n-A -t 10.0.0.4:80\n",
    );
    assert_eq!(
        (o.stdout.as_str(), o.stderr.as_str(), o.code),
        (
            "",
            "Service already exists\nIllegal 'weight' option with the 'add-service' command\n",
            2
        )
    );
    assert_eq!(
        sh(&m, "-S -n").stdout,
        "-A -t 10.0.0.1:80 -s wlc\n-A -t 10.0.0.2:80 -s wlc\n"
    );
    // The status is the last line's: a director error there gives 255 ...
    let o = restore(&m, "-A -t 10.0.0.5:80\n-A -t 10.0.0.5:80\n");
    assert_eq!(
        (o.stderr.as_str(), o.code),
        ("Service already exists\n", 255)
    );
    // ... and a success after an error gives 0.
    let o = restore(&m, "-A -t 10.0.0.5:80\n-A -t 10.0.0.6:80\n");
    assert_eq!((o.stderr.as_str(), o.code), ("Service already exists\n", 0));
}

#[test]
fn popt_errors_do_not_abort() {
    // ipvsadm's process_options returns -1 for popt's errors instead of exiting.
    let d = director();
    let m = d.control(now());
    let o = restore(&m, "-A -t\n-A -t 10.0.0.1:80\n-L --bogus\n");
    assert_eq!(
        (o.stderr.as_str(), o.code),
        ("-t: missing argument\n--bogus: unknown option\n", 255)
    );
    assert_eq!(sh(&m, "-S -n").stdout, "-A -t 10.0.0.1:80 -s wlc\n");
}

#[test]
fn listings_help_and_nesting() {
    let d = director();
    let m = d.control(now());
    let o = restore(&m, "-A -t 10.0.0.1:80\n-S -n\n-L -n --timeout\n");
    assert_eq!(
        (o.stdout.as_str(), o.code),
        (
            "-A -t 10.0.0.1:80 -s wlc\nTimeout (tcp tcpfin udp): 900 120 300\n",
            0
        )
    );
    // -R inside -R.
    let o = restore(&m, "-Z\n-R\n-C\n");
    assert_eq!(
        (o.stdout.as_str(), o.stderr.as_str(), o.code),
        ("", TRY, 255)
    );
    assert_eq!(sh(&m, "-S -n").stdout, "-A -t 10.0.0.1:80 -s wlc\n");
    // -v ends the process successfully, so the restore stops there with 0.
    let o = restore(&m, "-A -t 10.0.0.9:80\n-A -t 10.0.0.9:80\n-v\n-C\n");
    assert_eq!(
        (o.stdout.as_str(), o.stderr.as_str(), o.code),
        (
            "ipvsadm v1.31 2019/12/24 (compiled with popt and IPVS v1.2.1)\n",
            "Service already exists\n",
            0
        )
    );
    assert!(sh(&m, "-S -n").stdout.contains("10.0.0.9"));
    // A listing failure exits with 1 and stops the restore.
    let o = restore(&m, "-L -t 10.0.0.7:80\n-C\n");
    assert_eq!((o.stderr.as_str(), o.code), ("No such service\n", 1));
    assert!(sh(&m, "-S -n").stdout.contains("10.0.0.9"));
}

#[test]
fn empty_input() {
    let d = director();
    let m = d.control(now());
    let o = run_full(&m, "ipvsadm", &["-R"], None);
    assert_eq!((o.stdout.as_str(), o.stderr.as_str(), o.code), ("", "", 0));
    let o = restore(&m, "\n \n\t\nipvsadm\n");
    assert_eq!((o.stdout.as_str(), o.stderr.as_str(), o.code), ("", "", 0));
}
