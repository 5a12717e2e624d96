package forkwatch

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
)

// writePIDFile writes pid to path atomically: a temporary file in the same
// directory, renamed over path, so a reader (systemd's PIDFile=, a script
// sending signals) never sees it empty or half-written.
func writePIDFile(path string, pid int) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("pidfile: %w", err)
	}
	defer os.Remove(tmp.Name()) // after a successful rename there is nothing to remove
	if _, err := tmp.WriteString(strconv.Itoa(pid) + "\n"); err != nil {
		tmp.Close()
		return fmt.Errorf("pidfile: %w", err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return fmt.Errorf("pidfile: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("pidfile: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("pidfile: %w", err)
	}
	return nil
}

// removePIDFile removes path if it still holds pid: a newer supervisor
// started with the same -pidfile (an upgrade, a second instance by mistake)
// keeps its own. It reports whether it removed the file.
func removePIDFile(path string, pid int) (bool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		if os.IsNotExist(err) {
			return false, nil
		}
		return false, fmt.Errorf("pidfile: %w", err)
	}
	if string(bytes.TrimSpace(b)) != strconv.Itoa(pid) {
		return false, nil
	}
	if err := os.Remove(path); err != nil {
		return false, fmt.Errorf("pidfile: %w", err)
	}
	return true, nil
}
