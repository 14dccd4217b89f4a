package analyze

// DefaultOptions returns the settings New gives zero fields: the one definition of the analyzer's
// defaults, which the command line's flags take as theirs. LLM, Inspector, Consumer and Logger have none.
func DefaultOptions() Options {
	return Options{MinConfidence: DefaultMinConfidence, OOMWindow: DefaultOOMWindow, LLMMode: ModeAdvisory,
		LLMTimeout: defaultLLMTimeout, LLMConcurrency: defaultLLMParallel}
}
