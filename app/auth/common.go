package auth

import (
	"bufio"
	"bytes"
	"compress/gzip"
	_ "embed"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"unicode/utf8"
)

// commonPasswordsGzip is the list of commonly used and breached passwords
// (see data/NOTICE.md): one a line, gzip-compressed.
//
//go:embed data/common-passwords.txt.gz
var commonPasswordsGzip []byte

// commonPasswordList is the embedded list as a lookup: read once, on the
// first password checked.
var commonPasswordList = sync.OnceValues(func() (*passwordList, error) {
	return readPasswordList(bytes.NewReader(commonPasswordsGzip))
})

// passwordList answers whether a password is on a list, in any letter case.
// It keeps only the entries a password can equal once it has passed the
// length rule (at least minPasswordChars characters): a shorter password is
// refused before the list is asked.
type passwordList struct {
	// entries are the kept entries, lower-cased, sorted and distinct.
	entries []string
	// read is how many entries the list has in all.
	read int
}

// readPasswordList reads a gzip-compressed list of passwords, one a line
// (a trailing carriage return is dropped, empty lines are skipped).
func readPasswordList(r io.Reader) (*passwordList, error) {
	zr, err := gzip.NewReader(r)
	if err != nil {
		return nil, fmt.Errorf("auth: read the common password list: %w", err)
	}
	defer zr.Close()
	l := &passwordList{}
	sc := bufio.NewScanner(zr)
	for sc.Scan() {
		line := bytes.TrimSuffix(sc.Bytes(), []byte("\r"))
		if len(line) == 0 {
			continue
		}
		l.read++
		if utf8.RuneCount(line) >= minPasswordChars {
			l.entries = append(l.entries, strings.ToLower(string(line)))
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("auth: read the common password list: %w", err)
	}
	slices.Sort(l.entries)
	l.entries = slices.Clip(slices.Compact(l.entries))
	return l, nil
}

// contains reports whether password is on the list, in any letter case.
func (l *passwordList) contains(password string) bool {
	_, found := slices.BinarySearch(l.entries, strings.ToLower(password))
	return found
}
