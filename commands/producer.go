package commands

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/urfave/cli/v2"
	"golang.org/x/sys/unix"

	"github.com/proglogctl/proglogctl/certs"
	"github.com/proglogctl/proglogctl/raftfsm"
)

// producersDir, in the config directory, keeps each profile's producer:
// NAME.json (the id and the next sequence not yet reserved) and NAME.lock,
// which a running produce holds. NAME is the profile's name, "default"
// without one, or "id-" and the hex of an id given by --producer-id.
const producersDir = "producers"

// sequenceBlock is how many sequences a produce reserves at a time: the
// file is rewritten once per block, and a crash skips at most the rest of
// a block (gaps are allowed; reuse is not).
const sequenceBlock = 1024

// producerFile is a producer's state on disk.
type producerFile struct {
	ID string `json:"id"`
	// NextSequence is the first sequence no produce has reserved.
	NextSequence uint64 `json:"next_sequence"`
}

// producer numbers produce's batches: a stable id, and sequences that never
// repeat for it (reserved in blocks in its file under its lock). An
// ephemeral producer (its lock held by another produce) has a fresh id and
// keeps its sequences in memory.
type producer struct {
	id        string
	path      string   // the state file; "" for an ephemeral producer
	lock      *os.File // held while the producer is in use
	next, end uint64   // sequences next..end-1 are reserved
	ephemeral bool
}

// openProducer returns the producer of --producer-id, else of the chosen
// profile, creating its id on first use. When another produce holds it, it
// returns a fresh ephemeral one and says so on stderr.
func openProducer(c *cli.Context) (*producer, error) {
	dir, err := configDir(c)
	if err != nil {
		return nil, err
	}
	name, id := "", c.String("producer-id")
	switch {
	case id != "":
		if len(id) > raftfsm.MaxProducerIDBytes {
			return nil, UsageError{Err: fmt.Errorf("produce: --producer-id of %d bytes is longer than %d", len(id), raftfsm.MaxProducerIDBytes)}
		}
		name = "id-" + hex.EncodeToString([]byte(id))
		if len(name) > 200 {
			name = name[:200]
		}
	default:
		if name, err = chosenProfileName(c); err != nil {
			return nil, err
		}
	}
	pdir := filepath.Join(dir, producersDir)
	if err := os.MkdirAll(pdir, 0o700); err != nil {
		return nil, fmt.Errorf("produce: %w", err)
	}
	lock, err := os.OpenFile(filepath.Join(pdir, name+".lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("produce: %w", err)
	}
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		lock.Close()
		if !errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("produce: lock %s: %w", lock.Name(), err)
		}
		p := &producer{id: newProducerID(name), next: 1, end: ^uint64(0), ephemeral: true}
		fmt.Fprintf(c.App.ErrWriter, "produce: warning: another produce is using producer %q; producing as %s for this run\n", name, p.id)
		return p, nil
	}
	p := &producer{path: filepath.Join(pdir, name+".json"), lock: lock}
	var f producerFile
	b, err := os.ReadFile(p.path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		f = producerFile{ID: id, NextSequence: 1}
		if f.ID == "" {
			f.ID = newProducerID(name)
		}
	case err != nil:
		p.close()
		return nil, fmt.Errorf("produce: %w", err)
	default:
		if err := json.Unmarshal(b, &f); err != nil || f.ID == "" || f.NextSequence == 0 {
			p.close()
			return nil, fmt.Errorf("produce: %s is damaged (%v); remove it to start a new producer id", p.path, err)
		}
	}
	p.id, p.next, p.end = f.ID, f.NextSequence, f.NextSequence
	if errors.Is(err, fs.ErrNotExist) {
		// The id is kept from its first use on, whether or not a batch
		// goes out.
		if err := p.reserve(); err != nil {
			p.close()
			return nil, err
		}
	}
	return p, nil
}

// newProducerID returns a fresh id: the host, the profile and 8 random bytes.
func newProducerID(name string) string {
	host, _ := os.Hostname()
	var b [8]byte
	rand.Read(b[:])
	id := fmt.Sprintf("%s/%s/%x", host, name, b)
	if len(id) > raftfsm.MaxProducerIDBytes {
		id = id[len(id)-raftfsm.MaxProducerIDBytes:]
	}
	return id
}

// chosenProfileName is the name of the profile --profile (or
// PROGLOG_PROFILE) names, else of the current one, else "default".
func chosenProfileName(c *cli.Context) (string, error) {
	if _, err := chosenProfile(c); err != nil {
		return "", err
	}
	if name := c.String("profile"); name != "" {
		return name, nil
	}
	ps, err := loadProfiles(profilesDir(c))
	if err != nil {
		return "", err
	}
	if ps.Current != "" {
		return ps.Current, nil
	}
	return "default", nil
}

// nextSequence returns the next sequence, reserving a new block in the file
// (written and fsynced before it is used) when the reserved ones are spent.
func (p *producer) nextSequence() (uint64, error) {
	if p.next == p.end {
		if err := p.reserve(); err != nil {
			return 0, err
		}
	}
	p.next++
	return p.next - 1, nil
}

func (p *producer) reserve() error {
	b, err := json.Marshal(producerFile{ID: p.id, NextSequence: p.end + sequenceBlock})
	if err != nil {
		return err
	}
	if err := certs.WriteFile(p.path, append(b, '\n'), 0o600, true); err != nil {
		return fmt.Errorf("produce: reserve sequences: %w", err)
	}
	p.end += sequenceBlock
	return nil
}

// close releases the producer, first writing back the next sequence when
// fewer were used than reserved (after a crash the next produce starts past
// the reserved block instead: gaps are allowed).
func (p *producer) close() {
	if p.lock != nil {
		if p.next < p.end {
			if b, err := json.Marshal(producerFile{ID: p.id, NextSequence: p.next}); err == nil {
				_ = certs.WriteFile(p.path, append(b, '\n'), 0o600, true)
			}
		}
		p.lock.Close() // releases the flock
		p.lock = nil
	}
}

// describe names the producer for messages.
func (p *producer) describe() string {
	if p.ephemeral {
		return "ephemeral producer " + p.id
	}
	return "producer " + p.id
}
