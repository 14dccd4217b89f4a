package embedded

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
)

// The journal is the in-process store's append-only file. After a header line it is a sequence of
// records, each the commands that bring some keys to the state they had when the record was written:
//
//	record  = length u32 | crc32c(payload) u32 | crc32c(length, crc) u32 | payload
//	payload = uvarint count, then count commands
//	command = uvarint argc, then argc times (uvarint len, bytes)
//
// The header's own checksum tells a torn final record (cut short by a crash or power loss: dropped with a
// warning) from a corrupt one in the middle (the start fails, naming the file).

// JournalFile is the in-process store's journal, in the data directory.
const JournalFile = "hemostat.journal"

const (
	journalMagic = "HEMOSTAT-JOURNAL 1\n"
	recordHeader = 12
	maxRecord    = 1 << 30
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// encodeRecord frames the commands as one record, in one allocation of its exact size.
func encodeRecord(cmds [][]string) []byte {
	n := uvarintLen(uint64(len(cmds)))
	for _, c := range cmds {
		n += uvarintLen(uint64(len(c)))
		for _, a := range c {
			n += uvarintLen(uint64(len(a))) + len(a)
		}
	}
	out := make([]byte, recordHeader, recordHeader+n)
	out = binary.AppendUvarint(out, uint64(len(cmds)))
	for _, c := range cmds {
		out = binary.AppendUvarint(out, uint64(len(c)))
		for _, a := range c {
			out = binary.AppendUvarint(out, uint64(len(a)))
			out = append(out, a...)
		}
	}
	p := out[recordHeader:]
	binary.LittleEndian.PutUint32(out[0:], uint32(len(p)))
	binary.LittleEndian.PutUint32(out[4:], crc32.Checksum(p, castagnoli))
	binary.LittleEndian.PutUint32(out[8:], crc32.Checksum(out[:8], castagnoli))
	return out
}

func uvarintLen(x uint64) int {
	n := 1
	for ; x >= 0x80; x >>= 7 {
		n++
	}
	return n
}

func decodePayload(p []byte) ([][]string, error) {
	r := bytes.NewReader(p)
	n, err := binary.ReadUvarint(r)
	if err != nil || n > uint64(len(p)) {
		return nil, errors.New("bad command count")
	}
	cmds := make([][]string, 0, n)
	for range n {
		argc, err := binary.ReadUvarint(r)
		if err != nil || argc > uint64(len(p)) {
			return nil, errors.New("bad argument count")
		}
		c := make([]string, 0, argc)
		for range argc {
			l, err := binary.ReadUvarint(r)
			if err != nil || l > uint64(r.Len()) {
				return nil, errors.New("bad argument length")
			}
			b := make([]byte, l)
			_, _ = io.ReadFull(r, b)
			c = append(c, string(b))
		}
		cmds = append(cmds, c)
	}
	return cmds, nil
}

// CorruptError is a journal that cannot be read past Offset: the store refuses to start rather than
// start with part of its state.
type CorruptError struct {
	Path   string
	Offset int64
	Reason string
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("journal %s is corrupt at byte %d (%s): the store did not start; move the file aside to start empty, or truncate it at that byte to keep what comes before", e.Path, e.Offset, e.Reason)
}

// replayJournal reads the journal at path and calls apply with each record's commands, in order. A torn
// final record is cut off the file with a warning. It returns the file's size after that.
func replayJournal(path string, log *slog.Logger, apply func([][]string) error) (int64, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("journal %s: %w", path, err)
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, 1<<20)
	magic := make([]byte, len(journalMagic))
	if n, err := io.ReadFull(r, magic); err != nil || string(magic) != journalMagic {
		if n == 0 && err == io.EOF {
			return 0, nil // created, never written
		}
		return 0, &CorruptError{Path: path, Offset: 0, Reason: "not a hemostat journal"}
	}
	off := int64(len(journalMagic))
	torn := func(why string) (int64, error) {
		log.Warn("embedded store: the journal ended in a torn record (a crash or power loss while writing); it was dropped and the rest loaded",
			"file", path, "at_byte", off, "reason", why)
		if err := os.Truncate(path, off); err != nil {
			return 0, fmt.Errorf("journal %s: drop the torn record: %w", path, err)
		}
		return off, nil
	}
	hdr := make([]byte, recordHeader)
	for {
		n, err := io.ReadFull(r, hdr)
		if err == io.EOF {
			return off, nil
		}
		if err != nil {
			return torn(fmt.Sprintf("%d bytes of a record header", n))
		}
		length := binary.LittleEndian.Uint32(hdr[0:])
		if crc32.Checksum(hdr[:8], castagnoli) != binary.LittleEndian.Uint32(hdr[8:]) {
			rest, _ := io.ReadAll(r)
			if allZero(hdr) && allZero(rest) {
				return torn("zeros where a record should be")
			}
			return 0, &CorruptError{Path: path, Offset: off, Reason: "bad record header checksum"}
		}
		if length > maxRecord {
			return 0, &CorruptError{Path: path, Offset: off, Reason: "record too long"}
		}
		payload := make([]byte, length)
		if _, err := io.ReadFull(r, payload); err != nil {
			return torn("record cut short")
		}
		if crc32.Checksum(payload, castagnoli) != binary.LittleEndian.Uint32(hdr[4:]) {
			if _, err := r.Peek(1); err == io.EOF {
				return torn("bad checksum in the final record")
			}
			return 0, &CorruptError{Path: path, Offset: off, Reason: "bad record checksum"}
		}
		cmds, err := decodePayload(payload)
		if err != nil {
			return 0, &CorruptError{Path: path, Offset: off, Reason: err.Error()}
		}
		if err := apply(cmds); err != nil {
			return 0, fmt.Errorf("journal %s: replay the record at byte %d: %w", path, off, err)
		}
		off += int64(recordHeader) + int64(length)
	}
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// journal appends records and fsyncs them; a rewrite from the live state replaces the file when it has
// grown well past that state.
type journal struct {
	path string

	mu       sync.Mutex
	f        *os.File
	size     int64    // bytes in f
	broken   error    // a failed append whose bytes could not be cut off: appending after them would corrupt the file
	live     int64    // size of the last rewrite's output: an estimate of the live state
	buffered [][]byte // records appended while a rewrite runs, for its file too; nil when none runs
}

func openJournal(path string, size int64) (*journal, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("journal %s: %w", path, err)
	}
	if size == 0 {
		if err := f.Truncate(0); err != nil {
			f.Close()
			return nil, fmt.Errorf("journal %s: %w", path, err)
		}
		if _, err := f.Write([]byte(journalMagic)); err != nil {
			f.Close()
			return nil, fmt.Errorf("journal %s: %w", path, err)
		}
		size = int64(len(journalMagic))
		if err := syncDir(path); err != nil {
			f.Close()
			return nil, err
		}
	}
	return &journal{path: path, f: f, size: size, live: size}, nil
}

// append writes the record and fsyncs it. A record that fails (a full disk) is cut off the file again, so
// the next one does not follow a torn one, which the replay would take for corruption or for a torn tail
// and drop the records after it; when it cannot be cut off, no later append is taken.
func (j *journal) append(rec []byte) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.broken != nil {
		return j.broken
	}
	_, err := j.f.Write(rec)
	if err != nil {
		err = fmt.Errorf("journal %s: %w", j.path, err)
	} else if err = j.f.Sync(); err != nil {
		err = fmt.Errorf("journal %s: fsync: %w", j.path, err)
	}
	if err != nil {
		if terr := j.f.Truncate(j.size); terr != nil {
			j.broken = fmt.Errorf("%w; cutting the failed record off: %v (no write is journaled from now on)", err, terr)
			return j.broken
		}
		return err
	}
	j.size += int64(len(rec))
	if j.buffered != nil {
		j.buffered = append(j.buffered, rec)
	}
	return nil
}

// startRewrite starts a rewrite when the file has grown well past the live state (more than twice its
// last rewritten size and by at least min bytes) and none runs: it creates the rewrite's file and buffers
// the records appended from now on. It returns nil when no rewrite is wanted. The check and the start are
// one step under the lock: a second rewrite started before the first one buffered would share its file and
// reset its buffer, and the records appended in between would be in neither file.
func (j *journal) startRewrite(min int64) (*os.File, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.buffered != nil || j.size <= 2*j.live || j.size-j.live <= min {
		return nil, nil
	}
	f, err := os.OpenFile(j.path+".rewrite", os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, fmt.Errorf("journal rewrite %s: %w", j.path, err)
	}
	if _, err := f.Write([]byte(journalMagic)); err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, fmt.Errorf("journal rewrite %s: %w", j.path, err)
	}
	j.buffered = [][]byte{}
	return f, nil
}

// finishRewrite appends the records written meanwhile to the rewrite's file and puts it in place of the
// journal, and returns its size. On error the rewrite is dropped and the journal goes on as it was.
func (j *journal) finishRewrite(nf *os.File, werr error) (int64, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	buffered := j.buffered
	j.buffered = nil
	fail := func(err error) (int64, error) {
		nf.Close()
		os.Remove(nf.Name())
		return 0, fmt.Errorf("journal rewrite %s: %w", j.path, err)
	}
	if werr != nil {
		return fail(werr)
	}
	for _, rec := range buffered {
		if _, err := nf.Write(rec); err != nil {
			return fail(err)
		}
	}
	if err := nf.Sync(); err != nil {
		return fail(err)
	}
	st, err := nf.Stat()
	if err != nil {
		return fail(err)
	}
	if err := os.Rename(nf.Name(), j.path); err != nil {
		return fail(err)
	}
	// nf is the journal now: appends go on at its end (a reopen that failed would leave them going to the
	// old file, unlinked by the rename).
	j.f.Close()
	j.f, j.size, j.live = nf, st.Size(), st.Size()
	return j.size, syncDir(j.path)
}

func (j *journal) close() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if err := j.f.Sync(); err != nil {
		j.f.Close()
		return fmt.Errorf("journal %s: fsync: %w", j.path, err)
	}
	return j.f.Close()
}

// syncDir fsyncs the directory holding path, so a created or renamed file survives a crash.
func syncDir(path string) error {
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return fmt.Errorf("data dir %s: %w", filepath.Dir(path), err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("data dir %s: fsync: %w", filepath.Dir(path), err)
	}
	return nil
}
