package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/mcpauthz/mcpauthz/identity"
)

const auditUsage = `Usage:
  mcpauthz audit verify [-config FILE] [-store URL]
      check the audit log's hash chain with the audit key; exit 1 if it is broken
  mcpauthz audit export [-config FILE] [-store URL] [-format jsonl|csv] [-org ID]
                        [-since RFC3339] [-until RFC3339] [-o FILE]
      write the audit log (or the events of one organization, since ≤ at < until)

The audit key comes from identity.audit_key_file or MCPAUTHZ_IDENTITY_AUDIT_KEY
(base64); export does not need it.
`

// runAudit is `mcpauthz audit verify|export`.
func runAudit(ctx context.Context, args, environ []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, auditUsage)
		return errUsage
	}
	switch args[0] {
	case "verify":
		return runAuditVerify(ctx, args[1:], environ, stdout, stderr)
	case "export":
		return runAuditExport(ctx, args[1:], environ, stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, auditUsage)
		return nil
	}
	fmt.Fprintf(stderr, "mcpauthz audit: unknown command %q\n\n%s", args[0], auditUsage)
	return errUsage
}

func runAuditVerify(ctx context.Context, args, environ []string, stdout, stderr io.Writer) error {
	fs, f := storeFlagSet("audit verify", stderr)
	if err := parseCommand(fs, args, stderr); err != nil {
		return err
	}
	cfg, err := loadConfig(Defaults(), f, fs, environ)
	if err != nil {
		return err
	}
	auditor, err := cfg.Identity.auditor()
	if err != nil {
		return err
	}
	store, err := openIdentityStore(ctx, cfg.Identity)
	if err != nil {
		return err
	}
	defer store.Close()
	rep, err := auditor.Verify(ctx, store)
	if err != nil && !errors.Is(err, identity.ErrChainBroken) {
		return err
	}
	printVerifyReport(stdout, describeStore(cfg.Identity.Store), rep)
	return err
}

// printVerifyReport writes what Verify found.
func printVerifyReport(w io.Writer, store string, rep identity.VerifyReport) {
	fmt.Fprintf(w, "audit log of identity store %s\n", store)
	fmt.Fprintf(w, "  events checked   %d\n", rep.Events)
	fmt.Fprintf(w, "  personal data    %d erased\n", rep.Erased)
	if rep.Broken == 0 {
		fmt.Fprintf(w, "  chain            intact\n")
		return
	}
	fmt.Fprintf(w, "  chain            BROKEN at event %d: %s\n", rep.Broken, rep.Reason)
	fmt.Fprintf(w, "                   (verification stops at the first broken event)\n")
	if rep.Broken == 1 && rep.Events == 0 {
		fmt.Fprintf(w, "                   (if no event verifies, check that the audit key is the one the log was written with)\n")
	}
}

// exportFormats are the formats of audit export.
var exportFormats = []string{"jsonl", "csv"}

func runAuditExport(ctx context.Context, args, environ []string, stdout, stderr io.Writer) error {
	fs, f := storeFlagSet("audit export", stderr)
	var format, org, since, until, out string
	fs.StringVar(&format, "format", "jsonl", "output `format`: jsonl or csv")
	fs.StringVar(&org, "org", "", "only the events of the organization with this `ID`")
	fs.StringVar(&since, "since", "", "only events at or after this `time` (RFC 3339)")
	fs.StringVar(&until, "until", "", "only events before this `time` (RFC 3339)")
	fs.StringVar(&out, "o", "", "output `file` (default: standard output), written with mode 0600")
	if err := parseCommand(fs, args, stderr); err != nil {
		return err
	}
	filter := identity.AuditFilter{OrgID: org}
	var errs []error
	if format != "jsonl" && format != "csv" {
		errs = append(errs, fmt.Errorf("-format: %q is not one of %v", format, exportFormats))
	}
	for _, t := range []struct {
		flag, value string
		into        *time.Time
	}{{"-since", since, &filter.Since}, {"-until", until, &filter.Until}} {
		if t.value == "" {
			continue
		}
		v, err := time.Parse(time.RFC3339, t.value)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %q is not an RFC 3339 time such as 2026-01-31T00:00:00Z", t.flag, t.value))
		}
		*t.into = v
	}
	if !filter.Since.IsZero() && !filter.Until.IsZero() && !filter.Since.Before(filter.Until) {
		errs = append(errs, errors.New("-since must be before -until"))
	}
	if err := errors.Join(errs...); err != nil {
		fmt.Fprintf(stderr, "audit export: %v\n", err)
		return errUsage
	}

	cfg, err := loadConfig(Defaults(), f, fs, environ)
	if err != nil {
		return err
	}
	store, err := openIdentityStore(ctx, cfg.Identity)
	if err != nil {
		return err
	}
	defer store.Close()

	var n int
	write := func(w io.Writer) error {
		n, err = exportAudit(ctx, store, filter, format, w)
		return err
	}
	if out == "" || out == "-" {
		err = writeBuffered(stdout, write)
	} else {
		err = writeFileAtomic(out, write)
	}
	if err != nil {
		return fmt.Errorf("exporting the audit log: %w", err)
	}
	dest := out
	if dest == "" || dest == "-" {
		dest = "standard output"
	}
	fmt.Fprintf(stderr, "exported %d audit events to %s\n", n, dest)
	return nil
}

// exportAudit writes the events f selects, a page of identity.MaxAuditPage
// at a time, following the sequence cursor; it stops at an empty page, as
// a reader may cap pages below the limit. CSV has one header row, even
// when no event matches. It returns how many events it wrote.
func exportAudit(ctx context.Context, r identity.AuditReader, f identity.AuditFilter, format string, w io.Writer) (int, error) {
	f.Limit, f.AfterSeq = identity.MaxAuditPage, 0
	n := 0
	for {
		page, err := r.AuditEvents(ctx, f)
		if err != nil {
			return n, err
		}
		if format == "csv" {
			// The first page carries the header, empty or not.
			if n == 0 || len(page) > 0 {
				err = identity.WriteAuditCSV(w, page, n == 0)
			}
		} else {
			err = identity.WriteAuditJSONL(w, page)
		}
		if err != nil {
			return n, err
		}
		if len(page) == 0 {
			return n, nil
		}
		n += len(page)
		f.AfterSeq = page[len(page)-1].Seq
	}
}

// writeBuffered runs write on a buffer over w and flushes it.
func writeBuffered(w io.Writer, write func(io.Writer) error) error {
	bw := bufio.NewWriter(w)
	if err := write(bw); err != nil {
		return err
	}
	return bw.Flush()
}

// writeFileAtomic writes path through a temporary file beside it, readable
// by its owner only (the log holds personal data), and renames it into
// place once complete: a failed export leaves no partial file.
func writeFileAtomic(path string, write func(io.Writer) error) (err error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err := writeBuffered(tmp, write); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
